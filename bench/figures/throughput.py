"""Throughput ratios, A and B side by side: ceiling, ``/live``, the ops stack on a trivial view and
on a real page, the metrics middleware alone, and the database pool against persistent connections.
"""

from __future__ import annotations

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


def compare(
    bench: Bench,
    a: BenchServer,
    b: BenchServer,
    *,
    path_a: str,
    path_b: str | None = None,
    headers: dict[str, str] | None = None,
    rounds: int | None = None,
) -> SideBySide:
    """Requests per second of A and B, alternating, after a warm-up of each (``Sizes.rounds``
    rounds unless said otherwise)."""
    path_b = path_b or path_a
    headers = headers or {}
    if bench.sizes.warmup_seconds:
        for server, path in ((a, path_a), (b, path_b)):
            seconds = bench.sizes.warmup_seconds
            warm_up = run_wrk(server.base_url, paths=[path], seconds=seconds, threads=1, headers=headers)
            require_clean(warm_up, f"warm-up {path}")
    return side_by_side(
        lambda: _rps(bench, a, path_a, headers),
        lambda: _rps(bench, b, path_b, headers),
        rounds or bench.sizes.rounds,
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


def ops_overhead_trivial(bench: Bench) -> list[Row]:
    full, no_ops = bench.servers("full", "no-ops")
    headers = {**bench.django_headers, "X-Tenant-ID": bench.seed["staff_tenant"]}
    result = compare(bench, full, no_ops, path_a=TRIVIAL_PATH, headers=headers)
    row = _ratio_row(
        "ops_overhead_trivial", "ops overhead, trivial view (with / without)", result, 0.92, "with vs without"
    )
    row.data["ops_middleware"] = bench.seed["ops_middleware"]
    return [row]


def metrics_middleware_overhead(bench: Bench) -> list[Row]:
    if not bench.seed["metrics_middleware"]:
        raise FeatureMissing("no apps.ops.metrics middleware in MIDDLEWARE")
    full, no_metrics = bench.servers("full", "no-metrics")
    headers = {**bench.django_headers, "X-Tenant-ID": bench.seed["staff_tenant"]}
    result = compare(bench, full, no_metrics, path_a=TRIVIAL_PATH, headers=headers)
    row = _ratio_row(
        "metrics_middleware_overhead",
        "metrics middleware alone, trivial view (with / without)",
        result,
        None,
        "with vs without",
    )
    row.target = "recorded (django-prometheus' own middleware: ≈ 0.80)"
    return [row]


def _real_page_headers(bench: Bench) -> dict[str, str]:
    return {**bench.django_headers, "Cookie": bench.seed["session_cookie"]}


def _check_real_page(bench: Bench, server: BenchServer) -> None:
    body = _require_status(server, REAL_PAGE_PATH, _real_page_headers(bench), "the subscriber list")
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
        rounds=bench.sizes.real_page_rounds,
    )


def ops_overhead_real_page(bench: Bench) -> list[Row]:
    result = _compare_real_page(bench, "full", "no-ops")
    return [
        _ratio_row(
            "ops_overhead_real_page",
            "ops overhead, real page: subscriber list, PostgreSQL, staff session (with / without)",
            result,
            0.97,
            "with vs without",
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
    Figure(("metrics_middleware_overhead",), metrics_middleware_overhead),
    Figure(("ops_overhead_real_page",), ops_overhead_real_page),
    Figure(("db_pool_vs_persistent",), db_pool_vs_persistent),
]
