"""Probe latency: ``/live`` and ``/ready`` p50/p99 with every dependency healthy, then with Redis
frozen by SIGSTOP (it accepts connections and never answers), and whether any worker got stuck.
"""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import ThreadPoolExecutor

from bench.context import Bench
from bench.load import LoadResult, http_get, require_clean, run_wrk, try_get
from bench.report import BenchError, FeatureMissing, Row
from bench.servers import THREADS_PER_WORKER, BenchServer, wait_until

from . import Figure

# A kubelet sends one probe at a time to a container. With two connections, whether both landed on
# one worker (and then competed for its interpreter) changed from run to run: p50 1.0 ms in one run,
# 2.3 ms in the next, same server. One connection measures the probe.
PROBE_CONNECTIONS = 1


def _probe(bench: Bench, server: BenchServer, path: str, seconds: int) -> LoadResult:
    return run_wrk(
        server.base_url,
        paths=[path],
        seconds=seconds,
        connections=PROBE_CONNECTIONS,
        threads=1,
        headers=bench.django_headers,
        timeout_seconds=10,
    )


def _latency(result: LoadResult) -> str:
    return f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, max {result.max_ms:.1f} ms"


def _data(result: LoadResult) -> dict:
    return {
        "p50_ms": result.p50_ms,
        "p90_ms": result.p90_ms,
        "p99_ms": result.p99_ms,
        "max_ms": result.max_ms,
        "requests": result.requests,
        "responses_ge_400": result.http_errors,
        "socket_errors": result.socket_errors,
        "timeouts": result.timeouts,
    }


def _require_probe(server: BenchServer, path: str, bench: Bench, expected: int) -> None:
    response = http_get(server.port, path, headers=bench.django_headers)
    if response.status == 404:
        raise FeatureMissing(f"GET {path} answered 404: probes are not in this build")
    if response.status != expected:
        raise BenchError(
            f"GET {path} answered {response.status}, expected {expected}: {response.body[:300]!r}"
        )


def healthy_latency(bench: Bench) -> list[Row]:
    """Probes flooded back to back (the per-process result cache answers most of them), and
    ``/ready`` on a server with the cache off: every request runs the checks, which is what a
    kubelet probing every few seconds mostly sees."""
    server, uncached = bench.servers("probes", "ready-uncached")
    rows = []
    for path, probed, figure, title, target in (
        ("/live", server, "live_latency_healthy", "`/live` latency, healthy", None),
        ("/ready", server, "ready_latency_healthy", "`/ready` latency, healthy (result cache on)", 5.0),
        (
            "/ready",
            uncached,
            "ready_latency_uncached",
            "`/ready` latency, healthy, result cache off (every request runs the checks)",
            5.0,
        ),
    ):
        _require_probe(probed, path, bench, 200)
        if bench.sizes.warmup_seconds:  # as before the throughput rounds: steady state, not first requests
            _probe(bench, probed, path, bench.sizes.warmup_seconds)
        result = require_clean(_probe(bench, probed, path, bench.sizes.latency_seconds), f"GET {path}")
        rows.append(
            Row(
                figure,
                title,
                measured=_latency(result),
                target=f"p99 ≤ {target:.0f} ms" if target else "recorded",
                met=None if target is None else result.p99_ms <= target,
                data=_data(result),
            )
        )
    return rows


def _concurrent_live(server: BenchServer, bench: Bench, count: int) -> list[float | None]:
    """``count`` simultaneous GET /live; each one's seconds, or None if it failed or took > 5 s."""

    def one(_: int) -> float | None:
        response = try_get(server.port, "/live", headers=bench.django_headers, timeout=5.0)
        return response.seconds if response is not None and response.status == 200 else None

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def _cache_check(response) -> str:
    """The cache check's status in a /ready answer ("" when there is none)."""
    try:
        return json.loads(response.body)["checks"]["cache"][0]["status"]
    except (AttributeError, ValueError, KeyError, IndexError, TypeError):
        return ""


def frozen_redis_latency(bench: Bench) -> list[Row]:
    (server,) = bench.servers("probes")
    _require_probe(server, "/ready", bench, 200)
    deadline = float(bench.seed["settings"].get("HEALTH_CHECK_DEADLINE", 0) or 0)
    if not deadline:
        raise FeatureMissing("no HEALTH_CHECK_DEADLINE setting")
    ttl = float(bench.seed["settings"].get("HEALTH_CACHE_TTL", 0) or 0)
    # Long enough for check runs to hit the deadline (the full run: several per worker).
    seconds = max(bench.sizes.latency_seconds, math.ceil(deadline) + 1)
    assert bench.redis is not None
    bench.redis.freeze()
    try:
        ready = _probe(bench, server, "/ready", seconds)
        # By now the cached result has expired: the answer must be 200 with the cache check at warn
        # (Redis is shared by every pod: readiness stays up), not 503 or 500, not a hang.
        last = http_get(server.port, "/ready", headers=bench.django_headers, timeout=10)
        live = _probe(bench, server, "/live", max(1, bench.sizes.latency_seconds))
        # Every worker thread at once: a thread stuck on Redis would show up as a slow or failed /live.
        burst = _concurrent_live(server, bench, 2 * server.workers * THREADS_PER_WORKER)
    finally:
        bench.redis.thaw()
    thawed = time.monotonic()
    try:
        wait_until(
            lambda: _cache_check(try_get(server.port, "/ready", headers=bench.django_headers)) == "pass",
            timeout=ttl + deadline + 10,
            message="the cache check to pass again after Redis thawed",
        )
        recovery = time.monotonic() - thawed
    except TimeoutError:
        recovery = None

    if ready.socket_errors or ready.timeouts:
        raise BenchError(
            f"/ready with Redis frozen: {ready.socket_errors} socket errors, {ready.timeouts} timeouts"
        )
    answered = [seconds for seconds in burst if seconds is not None]
    stuck = len(burst) - len(answered)
    limit_ms = deadline * 1000 + 100
    ready_row = Row(
        "ready_latency_redis_frozen",
        "`/ready` latency, Redis frozen (SIGSTOP)",
        measured=(
            f"{_latency(ready)}; {ready.http_errors} of {ready.requests} answered ≥ 400, the last "
            f"one {last.status} (cache check {_cache_check(last)}) in {last.seconds * 1000:.0f} ms; "
            + (
                f"cache check passing {recovery:.1f} s after SIGCONT"
                if recovery is not None
                else "did NOT recover"
            )
        ),
        target=(
            f"p99 ≤ deadline {deadline:.1f} s + 100 ms = {limit_ms:.0f} ms, all 200 with the cache check at "
            "warn (a shared dependency), no worker stuck"
        ),
        met=(
            ready.p99_ms <= limit_ms
            and ready.http_errors == 0
            and (last.status, _cache_check(last)) == (200, "warn")
            and stuck == 0
            and recovery is not None
        ),
        data={
            **_data(ready),
            "last_status": last.status,
            "last_ms": last.seconds * 1000,
            "recovery_seconds": recovery,
            "deadline_seconds": deadline,
            "cache_ttl_seconds": ttl,
        },
    )
    live_row = Row(
        "live_latency_redis_frozen",
        "`/live` latency, Redis frozen (SIGSTOP); every worker thread probed at once",
        measured=(
            f"{_latency(live)}; burst of {len(burst)} concurrent: {len(answered)} answered, "
            f"slowest {max(answered, default=0) * 1000:.0f} ms"
        ),
        target="all 200, no worker stuck",
        met=live.http_errors == 0 and live.socket_errors == 0 and live.timeouts == 0 and stuck == 0,
        data={**_data(live), "burst": len(burst), "burst_answered": len(answered)},
    )
    return [ready_row, live_row]


FIGURES = [
    Figure(("live_latency_healthy", "ready_latency_healthy", "ready_latency_uncached"), healthy_latency),
    Figure(("ready_latency_redis_frozen", "live_latency_redis_frozen"), frozen_redis_latency),
]
