"""Worker memory: RSS of each worker after a warm-up that runs every code path for one tenant, and
after many requests spread over many tenants and every route; then whether it keeps growing.

The growth is what serving many tenants costs a worker (a metric series per route, status and
tenant, caches) plus anything that leaks. To tell the two apart, a one-worker server gets every
route for every tenant three times: by the third time it has every series, so what still grows
is a leak. (With two workers, which one serves a request depends on the connection, so each keeps
meeting series it has not seen yet.)
"""

from __future__ import annotations

from collections.abc import Callable

from bench.context import Bench, ServerSpec
from bench.report import Row
from bench.servers import BenchServer
from bench.traffic import route_paths, send_once

from . import Figure


def _send(bench: Bench, server: BenchServer, tenants: list[str], requests: int) -> None:
    """About ``requests`` requests: whole passes of every route for every tenant, then a part."""
    routes = len(route_paths(bench))
    while requests > 0:
        share = min(routes * len(tenants), requests)
        send_once(bench, server, tenants[: max(1, -(-share // routes))])
        requests -= share


def _mb(sizes: list[int]) -> str:
    return ", ".join(f"{size / 2**20:.1f}" for size in sizes) + " MB"


def _rss_after(
    bench: Bench,
    name: str,
    workers: int | None,
    tenants: list[str],
    steps: list[Callable[[BenchServer], object]],
) -> list[list[int]]:
    """RSS of each worker of a new server after a warm-up (every route, one tenant: every code
    path runs), then after each of ``steps``; the workers must stay the same all along."""
    server = bench.new_server(name, ServerSpec(workers=workers))
    bench.start_all(server)
    try:
        _send(bench, server, tenants[:1], bench.sizes.memory_warmup_requests)
        pids = server.worker_pids()
        sizes = [server.worker_rss()]
        for step in steps:
            step(server)
            sizes.append(server.worker_rss())
        pids_after = server.worker_pids()
    finally:
        server.stop()
    if pids != pids_after:
        raise RuntimeError(f"workers were replaced during the measurement ({pids} → {pids_after})")
    return sizes


def memory_growth(bench: Bench) -> list[Row]:
    sizes = bench.sizes
    tenants = bench.seed["tenants"][: sizes.memory_tenants]
    warm, spread = _rss_after(
        bench, "memory", None, tenants, [lambda server: _send(bench, server, tenants, sizes.memory_requests)]
    )
    growth = [later / earlier for earlier, later in zip(warm, spread, strict=True)]
    # One worker, three passes of every route for every tenant: by the third it has every series.
    passes = [
        size
        for (size,) in _rss_after(
            bench, "memory-one-worker", 1, tenants, [lambda server: send_once(bench, server, tenants)] * 3
        )
    ]
    growth_again = passes[-1] / passes[-2]
    return [
        Row(
            "memory_growth",
            f"memory: RSS per worker after warm-up ({sizes.memory_warmup_requests:,} requests, all "
            f"routes, 1 tenant), then after {sizes.memory_requests:,} requests over {len(tenants)} "
            "tenants x all routes",
            measured=f"{_mb(warm)} → {_mb(spread)}; largest growth {max(growth):.3f}x",
            target="growth ≤ 1.10x",
            met=max(growth) <= 1.10,
            data={
                "warm_bytes": warm,
                "after_spread_bytes": spread,
                "growth": growth,
            },
        ),
        Row(
            "memory_growth_again",
            f"memory, one worker: RSS after warm-up, then after each of 3 passes of all routes x "
            f"{len(tenants)} tenants; growth over the third (every series exists by then)",
            measured=f"{_mb(passes)}; third / second {growth_again:.3f}x",
            target="≤ 1.02x (a leak keeps growing; metric series stop)",
            met=growth_again <= 1.02,
            data={"rss_bytes": passes, "growth_third_pass": growth_again},
        ),
    ]


FIGURES = [Figure(("memory_growth", "memory_growth_again"), memory_growth)]
