"""Worker memory: RSS of each worker after a warm-up, and again after many more requests spread
over many tenants and every route. A leak (or unbounded label/cache growth) shows as growth.
"""

from __future__ import annotations

from bench.context import Bench, ServerSpec
from bench.report import Row
from bench.traffic import route_paths, send_once

from . import Figure


def _send(bench: Bench, server, tenants: list[str], requests: int) -> None:
    per_pass = len(route_paths(bench)) * len(tenants)
    while requests > 0:
        # A pass covers every route for every tenant; the last one may be cut short.
        share = min(per_pass, requests)
        send_once(bench, server, tenants[: max(1, -(-share // len(route_paths(bench))))])
        requests -= share


def memory_growth(bench: Bench) -> list[Row]:
    sizes = bench.sizes
    server = bench.new_server("memory", ServerSpec())
    bench.start_all(server)
    tenants = bench.seed["tenants"][: sizes.memory_tenants]
    try:
        _send(bench, server, tenants, sizes.memory_warmup_requests)
        pids_before = server.worker_pids()
        before = server.worker_rss()
        _send(bench, server, tenants, sizes.memory_requests)
        pids_after = server.worker_pids()
        after = server.worker_rss()
    finally:
        server.stop()
    if pids_before != pids_after:
        raise RuntimeError(f"workers were replaced during the measurement ({pids_before} → {pids_after})")
    growth = [later / earlier for earlier, later in zip(before, after, strict=True)]
    return [
        Row(
            "memory_growth",
            f"memory: RSS per worker after warm-up ({sizes.memory_warmup_requests:,} requests), then after "
            f"{sizes.memory_requests:,} more over {len(tenants)} tenants x all routes",
            measured=(
                ", ".join(f"{b / 2**20:.1f} → {a / 2**20:.1f} MB" for b, a in zip(before, after, strict=True))
                + f"; largest growth {max(growth):.3f}x"
            ),
            target="growth ≤ 1.10x",
            met=max(growth) <= 1.10,
            data={"before_bytes": before, "after_bytes": after, "growth": growth},
        )
    ]


FIGURES = [Figure(("memory_growth",), memory_growth)]
