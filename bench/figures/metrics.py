"""``/metrics`` figures: scrape time with 4 workers x tenants x all routes, on a server whose
workers never recycled next to one whose workers recycled hundreds of times, and how scrape
time and worker memory grow with the number of tenants.
"""

from __future__ import annotations

import os
import re
import statistics
from concurrent.futures import ThreadPoolExecutor

from bench.context import Bench, ServerSpec, stop_all
from bench.load import run_wrk
from bench.report import BenchError, Row
from bench.servers import BenchServer
from bench.stats import side_by_side
from bench.traffic import scrape, send_each, send_once, series_count, tenant_label_values

from . import Figure

# Both scrape servers load the application in the master before forking (gunicorn --preload):
# a recycled worker then starts in milliseconds instead of a second of imports, which is what
# makes 500 recycles fit in the run. Metrics files, the child_exit fold and the scrape are the
# same with or without it.
_PRELOAD = {"GUNICORN_CMD_ARGS": "--preload"}
# Requests a worker serves before it is recycled, on the recycling server.
RECYCLE_MAX_REQUESTS = 50
# Growth with tenants: each tenant requests this many routes (the next ones along for each
# next tenant, so all routes are covered): 1,000 tenants x every route would take minutes.
GROWTH_ROUTES_PER_TENANT = 8
_BOOTED = re.compile(r"Booting worker with pid")
# Scrape p50 of 4 workers x 100 tenants x all routes recorded before the per-tenant and per-route
# label sets were split (docs/BENCHMARKS.md at 372dcb7): the target is a tenth of it.
SCRAPE_P50_BEFORE_MS = 1212
# Growth with tenants: every tenant labelled up to this many, each scrape within the target.
LABELLED_TENANTS = 1000
SCRAPE_P50_TARGET_MS = 300


def _metrics_files(server: BenchServer) -> int:
    directory = server.env["PROMETHEUS_MULTIPROC_DIR"]
    return sum(1 for name in os.listdir(directory) if name.endswith(".db"))


def _recycles(server: BenchServer) -> int:
    return len(_BOOTED.findall(server.log_text())) - server.workers


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time a process used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _recycle(bench: Bench, server: BenchServer, target: int) -> int:
    """Send light requests until gunicorn replaced ``target`` workers.

    One route and no tenant: a fresh worker resolves each tenant once (a query per tenant), which
    would make every short-lived worker slow and the recycling take minutes.
    """
    for _ in range(100):
        done = _recycles(server)
        if done >= target:
            return done
        run_wrk(
            server.base_url,
            paths=["/bench/trivial/"],
            seconds=120,
            connections=4,
            headers=bench.django_headers,
            total_requests=(target - done) * RECYCLE_MAX_REQUESTS,
        )
    raise BenchError(f"only {_recycles(server)} of {target} worker recycles happened")


def scrape_after_recycles(bench: Bench) -> list[Row]:
    """Two servers side by side, one recycling its workers every ``RECYCLE_MAX_REQUESTS``.

    The recycles come first, with light traffic; then both servers get the same
    route traffic (every route x every tenant), which recycles some more workers on the recycling
    one. Each recycle makes the master fold the dead worker's metrics into the archives; its cost
    grows with the number of series, so it is measured during the route traffic (CPU time of the
    master per recycle).
    """
    sizes = bench.sizes
    tenants = bench.seed["tenants"][: sizes.scrape_tenants]
    spec = ServerSpec(workers=sizes.scrape_workers, env=_PRELOAD)
    steady = bench.new_server("scrape-steady", spec)
    recycling = bench.new_server(
        "scrape-recycled",
        spec,
        GUNICORN_MAX_REQUESTS=str(RECYCLE_MAX_REQUESTS),
        GUNICORN_MAX_REQUESTS_JITTER="0",
    )
    bench.start_all(steady, recycling)
    try:
        _recycle(bench, recycling, sizes.recycles)
        recycles_before_fill = _recycles(recycling)
        master_cpu_before_fill = _cpu_seconds(recycling.pid)
        # The same route traffic to both at once (nothing is timed meanwhile; the master's CPU
        # time is CPU time, whatever else runs).
        with ThreadPoolExecutor(max_workers=2) as pool:
            filled = [
                pool.submit(send_once, bench, steady, tenants),
                pool.submit(send_once, bench, recycling, tenants, allow_socket_errors=True),
            ]
            for future in filled:
                future.result()
        recycles = _recycles(recycling)
        fill_recycles = recycles - recycles_before_fill
        master_cpu = _cpu_seconds(recycling.pid) - master_cpu_before_fill
        bodies: dict[str, bytes] = {}

        def timed_scrape(server: BenchServer) -> float:
            seconds, bodies[server.name] = scrape(bench, server)
            return seconds

        result = side_by_side(
            lambda: timed_scrape(recycling), lambda: timed_scrape(steady), sizes.scrape_samples
        )
        after_body, before_body = bodies[recycling.name], bodies[steady.name]
        files = {"steady": _metrics_files(steady), "recycled": _metrics_files(recycling)}
    finally:
        stop_all(steady, recycling)
    per_recycle_ms = master_cpu / fill_recycles * 1000 if fill_recycles else None
    steady_p50_ms = result.b.median * 1000
    return [
        Row(
            "metrics_scrape_tenants_routes",
            f"`/metrics` scrape p50, {sizes.scrape_workers} workers x {len(tenants)} tenants x all routes",
            measured=f"{steady_p50_ms:.0f} ms; samples {series_count(before_body):,}",
            target=f"≤ {SCRAPE_P50_BEFORE_MS / 10:.0f} ms (a tenth of {SCRAPE_P50_BEFORE_MS:,} ms before)",
            met=steady_p50_ms <= SCRAPE_P50_BEFORE_MS / 10,
            data={"p50_ms": steady_p50_ms, "samples": series_count(before_body)},
        ),
        Row(
            "metrics_scrape_recycles",
            f"`/metrics` scrape, {sizes.scrape_workers} workers x {len(tenants)} tenants x all routes: "
            f"after {recycles} worker recycles / without recycling",
            measured=(
                f"{result.ratio.format('.3f')}; p50 {result.a.median * 1000:.0f} ms after vs "
                f"{result.b.median * 1000:.0f} ms without; metrics files {files['recycled']} vs "
                f"{files['steady']}; samples {series_count(after_body):,} vs {series_count(before_body):,}; "
                + (
                    f"master CPU per recycle during the route traffic {per_recycle_ms:.0f} ms"
                    if per_recycle_ms is not None
                    else "no recycle during the route traffic"
                )
            ),
            target="≤ 1.20",
            met=result.ratio.median <= 1.2,
            note=result.ratio.noise_note(1.2),
            data={
                **result.as_dict(),
                "recycles": recycles,
                "recycles_during_route_traffic": fill_recycles,
                "master_cpu_seconds_during_route_traffic": master_cpu,
                "max_requests": RECYCLE_MAX_REQUESTS,
                "files": files,
            },
        ),
    ]


def growth_with_tenants(bench: Bench) -> list[Row]:
    """One server; tenants are added step by step and measured at each step."""
    server = bench.new_server("growth", ServerSpec(workers=bench.sizes.scrape_workers))
    bench.start_all(server)
    steps = []
    try:
        seen = 0
        for count in bench.sizes.growth_tenants:
            send_once(
                bench, server, bench.seed["tenants"][seen:count], routes_per_tenant=GROWTH_ROUTES_PER_TENANT
            )
            seen = count
            _, body = scrape(bench, server)
            seconds = [scrape(bench, server)[0] for _ in range(bench.sizes.scrape_samples)]
            rss = server.worker_rss()
            steps.append(
                {
                    "tenants": count,
                    "scrape_p50_ms": statistics.median(seconds) * 1000,
                    "samples": series_count(body),
                    "tenant_labels": len(tenant_label_values(body)),
                    "rss_mb_median": statistics.median(rss) / 2**20,
                    "rss_mb_max": max(rss) / 2**20,
                }
            )
    finally:
        server.stop()
    limit = bench.seed["settings"].get("METRICS_TENANT_LABEL_LIMIT")
    last = steps[-1]
    return [
        Row(
            "metrics_growth_by_tenants",
            f"growth with tenants ({bench.sizes.scrape_workers} workers, "
            f"{GROWTH_ROUTES_PER_TENANT} routes per tenant): "
            "scrape p50 / RSS per worker / samples / tenant label values",
            measured="; ".join(
                f"{step['tenants']:,} tenants: {step['scrape_p50_ms']:.0f} ms, "
                f"{step['rss_mb_median']:.0f} MB, {step['samples']:,}, {step['tenant_labels']}"
                for step in steps
            ),
            target=(
                f"at {LABELLED_TENANTS:,} tenants: each its own label, "
                f"scrape p50 ≤ {SCRAPE_P50_TARGET_MS} ms "
                f"(METRICS_TENANT_LABEL_LIMIT={limit})"
            ),
            met=(
                last["tenants"] == LABELLED_TENANTS
                and last["tenant_labels"] == LABELLED_TENANTS
                and last["scrape_p50_ms"] <= SCRAPE_P50_TARGET_MS
            )
            if last["tenants"] == LABELLED_TENANTS
            else None,
            data={"steps": steps},
        )
    ]


def hostile_traffic(bench: Bench) -> list[Row]:
    """Series added by anonymous requests that try every label source, to a pod that served its
    members and was scraped."""
    domain = bench.seed["hostile_base_domain"]
    server = bench.new_server(
        "hostile",
        ServerSpec(workers=bench.sizes.scrape_workers),
        TENANT_BASE_DOMAIN=domain,
        ALLOWED_HOSTS=f"127.0.0.1,localhost,.{domain}",
    )
    bench.start_all(server)
    try:
        # A pod's steady state: its members' pages, and scrapes (the second shows the first counted).
        send_once(bench, server, bench.seed["tenants"][:10])
        scrape(bench, server)
        before = _series(scrape(bench, server)[1])
        attack = bench.seed["hostile_requests"]
        # Not through wrk, which waits for the body a HEAD answer announces but never sends.
        statuses = send_each(server, attack)
        if sum(statuses.values()) != len(attack) or any(status >= 500 for status in statuses):
            raise BenchError(f"hostile traffic: answers {dict(statuses)} for {len(attack)} requests")
        _, body = scrape(bench, server)
        added = sorted(_series(body) - before)
    finally:
        server.stop()
    return [
        Row(
            "metrics_hostile_traffic",
            f"series added by {len(attack):,} anonymous requests: random and invalid methods, every URL "
            "pattern with random parameters, random X-Tenant-ID, Host subdomains naming real tenants",
            measured=f"{len(added)} series added (of {len(_series(body)):,}): " + ", ".join(added[:20]),
            target="≤ 20",
            met=len(added) <= 20,
            data={"added": added, "statuses": {str(status): count for status, count in statuses.items()}},
        )
    ]


def _series(exposition: bytes) -> set[str]:
    """Every series of a text exposition: its sample lines without their values."""
    return {
        line.rsplit(b" ", 1)[0].decode()
        for line in exposition.splitlines()
        if line and not line.startswith(b"#")
    }


FIGURES = [
    Figure(("metrics_scrape_recycles", "metrics_scrape_tenants_routes"), scrape_after_recycles),
    Figure(("metrics_hostile_traffic",), hostile_traffic),
    Figure(("metrics_growth_by_tenants",), growth_with_tenants),
]
