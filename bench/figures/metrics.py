"""``/metrics`` figures: scrape time with 4 workers x tenants x all routes, on a server whose
workers never recycled next to one whose workers recycled hundreds of times, and how scrape
time and worker memory grow with the number of tenants.
"""

from __future__ import annotations

import os
import re
import statistics

from bench.context import Bench, ServerSpec, stop_all
from bench.load import run_wrk
from bench.report import BenchError, Row
from bench.servers import Gunicorn
from bench.stats import side_by_side
from bench.traffic import route_paths, scrape, send_once, series_count, tenant_label_values

from . import Figure

# Both scrape servers load the application in the master before forking (gunicorn --preload):
# a recycled worker then starts in milliseconds instead of a second of imports, which is what
# makes 500 recycles fit in the run. Metrics files, the child_exit fold and the scrape are the
# same with or without it.
_PRELOAD = {"GUNICORN_CMD_ARGS": "--preload"}
_BOOTED = re.compile(r"Booting worker with pid")


def _metrics_files(server: Gunicorn) -> int:
    directory = server.env["PROMETHEUS_MULTIPROC_DIR"]
    return sum(1 for name in os.listdir(directory) if name.endswith(".db"))


def _recycles(server: Gunicorn) -> int:
    return len(_BOOTED.findall(server.log_text())) - server.workers


def _recycle(bench: Bench, server: Gunicorn, target: int, max_requests: int) -> int:
    """Send requests until gunicorn has replaced ``target`` workers (counted in its log)."""
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
            total_requests=(target - done) * max_requests,
        )
    raise BenchError(f"only {_recycles(server)} of {target} worker recycles happened")


def scrape_after_recycles(bench: Bench) -> list[Row]:
    sizes = bench.sizes
    tenants = bench.seed["tenants"][: sizes.scrape_tenants]
    # The route traffic alone recycles about the wanted number of workers; more traffic tops up.
    max_requests = max(1, len(route_paths(bench)) * len(tenants) // sizes.recycles)
    spec = ServerSpec(workers=sizes.scrape_workers, env=_PRELOAD)
    steady = bench.new_server("scrape-steady", spec)
    recycling = bench.new_server(
        "scrape-recycled",
        spec,
        GUNICORN_MAX_REQUESTS=str(max_requests),
        GUNICORN_MAX_REQUESTS_JITTER="0",
    )
    bench.start_all(steady, recycling)
    try:
        send_once(bench, steady, tenants)
        send_once(bench, recycling, tenants, allow_socket_errors=True)
        recycles = _recycle(bench, recycling, sizes.recycles, max_requests)
        scrape(bench, steady)
        _, after_body = scrape(bench, recycling)
        _, before_body = scrape(bench, steady)
        result = side_by_side(
            lambda: scrape(bench, recycling)[0], lambda: scrape(bench, steady)[0], sizes.scrape_samples
        )
        files = {"steady": _metrics_files(steady), "recycled": _metrics_files(recycling)}
    finally:
        stop_all(steady, recycling)
    return [
        Row(
            "metrics_scrape_recycles",
            f"`/metrics` scrape, {sizes.scrape_workers} workers x {len(tenants)} tenants x all routes: "
            f"after {recycles} worker recycles / without recycling",
            measured=(
                f"{result.ratio.format()}; p50 {result.a.median * 1000:.0f} ms after vs "
                f"{result.b.median * 1000:.0f} ms without; metrics files {files['recycled']} vs "
                f"{files['steady']}; samples {series_count(after_body):,} vs {series_count(before_body):,}"
            ),
            target="≤ 1.20",
            met=result.ratio.median <= 1.2,
            data={**result.as_dict(), "recycles": recycles, "max_requests": max_requests, "files": files},
        )
    ]


def growth_with_tenants(bench: Bench) -> list[Row]:
    """One server; tenants are added step by step and measured at each step."""
    server = bench.new_server("growth", ServerSpec(workers=bench.sizes.scrape_workers))
    bench.start_all(server)
    steps = []
    try:
        seen = 0
        for count in bench.sizes.growth_tenants:
            send_once(bench, server, bench.seed["tenants"][seen:count])
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
    return [
        Row(
            "metrics_growth_by_tenants",
            f"growth with tenants ({bench.sizes.scrape_workers} workers, all routes per tenant): "
            "scrape p50 / RSS per worker / samples / tenant label values",
            measured="; ".join(
                f"{step['tenants']:,} tenants: {step['scrape_p50_ms']:.0f} ms, "
                f"{step['rss_mb_median']:.0f} MB, {step['samples']:,}, {step['tenant_labels']}"
                for step in steps
            ),
            target=f"recorded (tenant labels capped at METRICS_TENANT_LABEL_LIMIT={limit}, then 'other')",
            data={"steps": steps},
        )
    ]


FIGURES = [
    Figure(("metrics_scrape_recycles",), scrape_after_recycles),
    Figure(("metrics_growth_by_tenants",), growth_with_tenants),
]
