"""Drain time: SIGTERM to the gunicorn master until it exited, with 0, 1 and 16 requests in flight
(each taking a known time), all of which must complete with 200, and exit status 0.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor

from bench.context import Bench, ServerSpec, stop_all
from bench.load import try_get
from bench.report import BenchError, Row
from bench.servers import THREADS_PER_WORKER, BenchServer, wait_until

from . import Figure

# Generous: a drain that takes longer than this is reported as not finished.
_EXIT_WAIT_SECONDS = 60


def _drain_once(bench: Bench, server: BenchServer, inflight: int) -> dict:
    sizes = bench.sizes
    markers = server.env["BENCH_INFLIGHT_DIR"]
    path = f"/bench/slow/?seconds={sizes.drain_request_seconds}"
    with ThreadPoolExecutor(max_workers=max(inflight, 1)) as pool:
        futures: list[Future] = [
            pool.submit(try_get, server.port, path, headers=bench.django_headers, timeout=_EXIT_WAIT_SECONDS)
            for _ in range(inflight)
        ]
        # The requests are in flight once the view started (each leaves a marker file).
        wait_until(lambda: len(os.listdir(markers)) >= inflight, timeout=30, message="requests in flight")
        seconds, code = server.terminate(_EXIT_WAIT_SECONDS)
        responses = [future.result() for future in futures]
    completed = sum(1 for response in responses if response is not None and response.status == 200)
    return {"inflight": inflight, "seconds": seconds, "exit_code": code, "completed_200": completed}


def drain_times(bench: Bench) -> list[Row]:
    sizes = bench.sizes
    # Enough workers that every request is being served, none waits in a queue (16: 4 x 4).
    workers = max(1, -(-max(sizes.drain_inflight) // THREADS_PER_WORKER))
    servers = []
    for inflight in sizes.drain_inflight:
        marker_dir = bench.run_dir / f"inflight-{inflight}"
        marker_dir.mkdir()
        servers.append(
            bench.new_server(
                f"drain-{inflight}",
                ServerSpec(workers=workers),
                DRAIN_DELAY_SECONDS=str(sizes.drain_delay_seconds),
                BENCH_INFLIGHT_DIR=str(marker_dir),
            )
        )
    bench.start_all(*servers)
    rows = []
    try:
        for server, inflight in zip(servers, sizes.drain_inflight, strict=True):
            result = _drain_once(bench, server, inflight)
            longest = sizes.drain_request_seconds if inflight else 0.0
            limit = sizes.drain_delay_seconds + longest + 1.0
            if "drain finished" not in server.log_text():
                raise BenchError(f"{server.name}: no drain summary in the log; see {server.log_dir}")
            rows.append(
                Row(
                    f"drain_{'many' if inflight > 1 else inflight}_inflight",
                    f"drain time, SIGTERM → exit, {inflight} in-flight request(s) of "
                    f"{sizes.drain_request_seconds:g} s",
                    measured=(
                        f"{result['seconds']:.2f} s, exit {result['exit_code']}, "
                        f"{result['completed_200']}/{inflight} completed with 200"
                    ),
                    target=(
                        f"≤ drain delay {sizes.drain_delay_seconds:g} s + {longest:g} s + 1 s "
                        f"= {limit:g} s, exit 0, all completed"
                    ),
                    met=result["seconds"] <= limit
                    and result["exit_code"] == 0
                    and result["completed_200"] == inflight,
                    data=result,
                )
            )
    finally:
        stop_all(*servers)
    return rows


FIGURES = [Figure(("drain_0_inflight", "drain_1_inflight", "drain_many_inflight"), drain_times)]
