"""Throughput ratios, A and B side by side: ceiling, ``/live``, the ops stack on a trivial view and
on a real page, the metrics middleware alone, and the database pool against persistent connections.

The ops-stack ratios are measured interleaved: both variants in one worker, request by request
(``bench/interleaved.py``); that is what the verdict is taken on. For the trivial view the ratio of
two servers in alternating rounds is shown beside it: on this kind of machine those rounds differ
by ±10 % even between two identical servers, more than the differences measured.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from bench.context import THROUGHPUT_WORKERS, Bench
from bench.load import http_get, require_clean, run_wrk
from bench.report import BenchError, FeatureMissing, Row
from bench.servers import BenchServer
from bench.stats import SideBySide, Summary, side_by_side

from . import Figure

TRIVIAL_PATH = "/bench/trivial/"
REAL_PAGE_PATH = "/subscribers/"


def _rps(bench: Bench, server: BenchServer, path: str, headers: dict[str, str]) -> float:
    result = run_wrk(
        server.base_url,
        paths=[path],
        seconds=bench.sizes.load_seconds,
        connections=bench.sizes.connections,
        threads=1,
        headers=headers,
    )
    return require_clean(result, f"{server.name} {path}").rps


def _warm_up(bench: Bench, server: BenchServer, paths: list[str], headers: dict[str, str]) -> None:
    """``Sizes.warmup_seconds`` of the measured requests before the first round (steady state)."""
    if bench.sizes.warmup_seconds:
        seconds = bench.sizes.warmup_seconds
        result = run_wrk(server.base_url, paths=paths, seconds=seconds, threads=1, headers=headers)
        require_clean(result, f"warm-up {', '.join(paths)}")


def compare(
    bench: Bench,
    a: BenchServer,
    b: BenchServer,
    *,
    path_a: str,
    path_b: str | None = None,
    headers: dict[str, str] | None = None,
) -> SideBySide:
    """Requests per second of A and B, alternating, ``Sizes.rounds`` rounds after a warm-up of each."""
    path_b = path_b or path_a
    headers = headers or {}
    _warm_up(bench, a, [path_a], headers)
    _warm_up(bench, b, [path_b], headers)
    return side_by_side(
        lambda: _rps(bench, a, path_a, headers),
        lambda: _rps(bench, b, path_b, headers),
        bench.sizes.rounds,
    )


def _ratio_row(figure: str, title: str, result: SideBySide, minimum: float | None, names: str) -> Row:
    return Row(
        figure=figure,
        title=title,
        measured=(
            f"{result.ratio.format('.3f')}; {names}: {result.a.median:,.0f} vs {result.b.median:,.0f} req/s"
        ),
        target=f"≥ {minimum:.2f}" if minimum is not None else "recorded",
        met=None if minimum is None else result.ratio.median >= minimum,
        data=result.as_dict(),
        note=result.ratio.noise_note(minimum) if minimum is not None else "",
    )


def _require_status(server: BenchServer, path: str, headers: dict[str, str], what: str) -> bytes:
    response = http_get(server.port, path, headers=headers)
    if response.status == 404:
        raise FeatureMissing(f"GET {path} answered 404: {what} is not in this build")
    if response.status != 200:
        raise BenchError(f"GET {path} on {server.name} answered {response.status}, expected 200")
    return response.body


def ceiling_and_live(bench: Bench) -> list[Row]:
    hello, full = bench.servers("hello", "full")
    try:
        _require_status(full, "/live", bench.django_headers, "the liveness probe")
    except FeatureMissing as missing:
        rps = [_rps(bench, hello, "/", {}) for _ in range(bench.sizes.rounds)]
        ceiling = Summary.of(rps)
        return [
            _ceiling_row(ceiling),
            Row("live_vs_ceiling", "`/live` throughput vs ceiling", error=str(missing)),
        ]
    result = compare(bench, full, hello, path_a="/live", path_b="/", headers=bench.django_headers)
    return [
        _ceiling_row(result.b),
        _ratio_row("live_vs_ceiling", "`/live` throughput vs ceiling", result, 0.8, "/live vs hello"),
    ]


def _ceiling_row(rps: Summary) -> Row:
    return Row(
        "ceiling",
        f"ceiling: bare WSGI hello, same gunicorn config, {THROUGHPUT_WORKERS} worker",
        measured=f"{rps.format(',.0f')} req/s",
        target="reference",
        data=rps.as_dict(),
    )


@dataclass(frozen=True)
class Interleaved:
    """Per round: the throughput ratio with / without, and the CPU time per request of each variant
    and of the server around them (microseconds)."""

    ratio: Summary
    with_us: Summary
    without_us: Summary
    server_us: Summary

    def as_dict(self) -> dict:
        return {
            "ratio": self.ratio.as_dict(),
            "cpu_us_per_request_with": self.with_us.as_dict(),
            "cpu_us_per_request_without": self.without_us.as_dict(),
            "cpu_us_per_request_server": self.server_us.as_dict(),
        }


def _variant_stats(server: BenchServer) -> dict:
    response = http_get(server.port, "/~stats")
    if response.status != 200:
        raise BenchError(f"GET /~stats on {server.name} answered {response.status}")
    return json.loads(response.body)


def interleaved(bench: Bench, server: BenchServer, path: str, headers: dict[str, str]) -> Interleaved:
    """Requests alternate between the variants (``/~with`` + path, ``/~without`` + path) in one
    worker. A worker kept busy serves one core's worth of CPU time, so its throughput is one over
    the CPU time per request: the variant's own (the Django handler, measured per request) plus the
    server's share (the worker's CPU time beyond both variants', per request, the same for both)."""
    paths = [f"/~with{path}", f"/~without{path}"]
    _warm_up(bench, server, paths, headers)
    if not _variant_stats(server)["without_middleware"]:
        raise BenchError(f"{server.name}: BENCH_WITHOUT_MIDDLEWARE leaves nothing out: no difference")
    ratios, with_us, without_us, server_us = [], [], [], []
    for _ in range(bench.sizes.interleaved_rounds):
        before = _variant_stats(server)
        result = run_wrk(
            server.base_url,
            paths=paths,
            seconds=bench.sizes.load_seconds,
            connections=bench.sizes.connections,
            threads=1,
            headers=headers,
        )
        require_clean(result, f"{server.name} {path}")
        after = _variant_stats(server)
        spent = {
            name: (
                after["variants"][name]["cpu_seconds"] - before["variants"][name]["cpu_seconds"],
                after["variants"][name]["requests"] - before["variants"][name]["requests"],
            )
            for name in ("with", "without")
        }
        if min(count for _, count in spent.values()) < 1:
            raise BenchError(f"{server.name}: a variant served no request in a round: {spent}")
        requests = sum(count for _, count in spent.values())
        process_cpu = after["process_cpu_seconds"] - before["process_cpu_seconds"]
        shared = (process_cpu - sum(cpu for cpu, _ in spent.values())) / requests
        own = {name: cpu / count for name, (cpu, count) in spent.items()}
        ratios.append((shared + own["without"]) / (shared + own["with"]))
        with_us.append(own["with"] * 1e6)
        without_us.append(own["without"] * 1e6)
        server_us.append(shared * 1e6)
    return Interleaved(Summary.of(ratios), Summary.of(with_us), Summary.of(without_us), Summary.of(server_us))


def _interleaved_row(
    figure: str, title: str, result: Interleaved, alternating: SideBySide | None, minimum: float | None
) -> Row:
    measured = (
        f"{result.ratio.format('.3f')}; CPU per request with vs without: {result.with_us.median:,.0f} vs "
        f"{result.without_us.median:,.0f} µs, + {result.server_us.median:,.0f} µs of the server's"
    )
    data = {"interleaved": result.as_dict()}
    if alternating is not None:
        measured += (
            f"; two servers in alternating rounds: {alternating.ratio.format('.3f')}, "
            f"{alternating.a.median:,.0f} vs {alternating.b.median:,.0f} req/s"
        )
        data["alternating_servers"] = alternating.as_dict()
    return Row(
        figure=figure,
        title=title,
        measured=measured,
        target=f"≥ {minimum:.2f}" if minimum is not None else "recorded",
        met=None if minimum is None else result.ratio.median >= minimum,
        data=data,
        note=result.ratio.noise_note(minimum) if minimum is not None else "",
    )


def ops_overhead_trivial(bench: Bench) -> list[Row]:
    full, no_ops, both = bench.servers("full", "no-ops", "interleaved-ops")
    headers = {**bench.django_headers, "X-Tenant-ID": bench.seed["staff_tenant"]}
    alternating = compare(bench, full, no_ops, path_a=TRIVIAL_PATH, headers=headers)
    result = interleaved(bench, both, TRIVIAL_PATH, headers)
    row = _interleaved_row(
        "ops_overhead_trivial", "ops overhead, trivial view (with / without)", result, alternating, 0.92
    )
    row.data["ops_middleware"] = bench.seed["ops_middleware"]
    return [row]


def metrics_middleware_overhead(bench: Bench) -> list[Row]:
    """The request metrics middleware, and django-prometheus' default middleware in the same run, each
    against the same stack without any request metrics middleware, interleaved."""
    if not bench.seed["metrics_middleware"]:
        raise FeatureMissing("no apps.ops.metrics middleware in MIDDLEWARE")
    ours, peer = bench.servers("interleaved-metrics", "interleaved-metrics-peer")
    headers = bench.django_headers  # a client that is not logged in: no tenant metrics
    ours_result = interleaved(bench, ours, TRIVIAL_PATH, headers)
    peer_result = interleaved(bench, peer, TRIVIAL_PATH, headers)
    return [
        _interleaved_row(
            "metrics_middleware_overhead",
            "metrics middleware alone, trivial view (with / without)",
            ours_result,
            None,
            0.98,
        ),
        _interleaved_row(
            "metrics_middleware_peer",
            "peer: django-prometheus' PrometheusBefore/AfterMiddleware alone, trivial view (with / without)",
            peer_result,
            None,
            None,
        ),
    ]


def _real_page_headers(bench: Bench) -> dict[str, str]:
    return {**bench.django_headers, "Cookie": bench.seed["session_cookie"]}


def _check_real_page(bench: Bench, server: BenchServer, prefix: str = "") -> None:
    body = _require_status(server, prefix + REAL_PAGE_PATH, _real_page_headers(bench), "the subscriber list")
    rows = body.count(b"<tr>") - 1  # minus the header row
    if rows < 1:
        raise BenchError(f"the subscriber list on {server.name} shows no subscriber (not logged in?)")


def _compare_real_page(bench: Bench, name_a: str, name_b: str):
    """Side-by-side throughput of the subscriber list page on two servers (A / B)."""
    server_a, server_b = bench.servers(name_a, name_b)
    for server in (server_a, server_b):
        _check_real_page(bench, server)
    return compare(
        bench,
        server_a,
        server_b,
        path_a=REAL_PAGE_PATH,
        headers=_real_page_headers(bench),
    )


def ops_overhead_real_page(bench: Bench) -> list[Row]:
    # Interleaved only: at 45 requests/s, two servers in alternating rounds differ by more than the
    # whole ops stack costs this page (about 1 %), and the run's ten minutes are better spent elsewhere.
    (both,) = bench.servers("interleaved-ops")
    for variant in ("/~with", "/~without"):
        _check_real_page(bench, both, prefix=variant)
    headers = _real_page_headers(bench)
    result = interleaved(bench, both, REAL_PAGE_PATH, headers)
    return [
        _interleaved_row(
            "ops_overhead_real_page",
            "ops overhead, real page: subscriber list, PostgreSQL, staff session (with / without)",
            result,
            None,
            0.97,
        )
    ]


def db_pool_vs_persistent(bench: Bench) -> list[Row]:
    result = _compare_real_page(bench, "full", "persistent")
    row = _ratio_row(
        "db_pool_vs_persistent",
        "database: psycopg pool vs persistent connections, real page (pool / persistent)",
        result,
        None,
        "pool vs persistent",
    )
    return [row]


FIGURES = [
    Figure(("ceiling", "live_vs_ceiling"), ceiling_and_live),
    Figure(("ops_overhead_trivial",), ops_overhead_trivial),
    Figure(("metrics_middleware_overhead", "metrics_middleware_peer"), metrics_middleware_overhead),
    Figure(("ops_overhead_real_page",), ops_overhead_real_page),
    Figure(("db_pool_vs_persistent",), db_pool_vs_persistent),
]
