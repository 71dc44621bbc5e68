"""Circuit breaker costs, measured inside one Django process: ``python -m bench.breaker_calls``.

- concurrency: N threads call, at the same moment, through one closed breaker to a local upstream
  that takes ``--upstream-seconds`` to answer; total wall time with our breaker (directly and
  through ``apps.ops.http``) and with a plain ``pybreaker.CircuitBreaker``, alternating rounds.
- fail-fast: the cost of one call rejected by an open breaker (with shared state in Redis when
  ``REDIS_URL`` is set, in the database otherwise), and of plain pybreaker for reference.

Prints one JSON object. Run with the benchmark's environment (``DJANGO_SETTINGS_MODULE``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable

import django

from bench.report import JSON_MARK
from tests.upstream import Upstream


def concurrent_seconds(call: Callable[[], object], threads: int) -> float:
    """Start ``threads`` calls at one moment; seconds until the last one returned."""
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            call()
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} of {threads} calls failed: {errors[0]!r}")
    return elapsed


def per_call_microseconds(call: Callable[[], object], expected: type[BaseException], calls: int) -> float:
    """Median over 5 batches of the cost of one call that raises ``expected``."""
    batches = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            try:
                call()
            except expected:
                pass
            else:
                raise RuntimeError("the call was let through: the breaker is not open")
        batches.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(batches)


def _fail() -> None:
    raise ConnectionError("upstream down (simulated)")


def measure(threads: int, upstream_seconds: float, rounds: int, fail_fast_calls: int) -> dict:
    import pybreaker
    import urllib3
    from django.conf import settings

    from apps.ops import breakers, http

    upstream = Upstream(delay=upstream_seconds).start()
    url = f"{upstream.url}/provision"
    pool = urllib3.PoolManager(maxsize=threads * 2, retries=False)

    def fetch() -> bytes:
        return pool.request("GET", url, timeout=5.0).data

    ours = breakers.get_breaker("bench-concurrency")
    plain = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60, name="plain")
    fetch()  # open the first connections outside the timing
    timings: dict[str, list[float]] = {"ours": [], "ours_http_client": [], "pybreaker": []}
    for _ in range(rounds):
        timings["ours"].append(concurrent_seconds(lambda: ours.call(fetch), threads))
        timings["pybreaker"].append(concurrent_seconds(lambda: plain.call(fetch), threads))
        timings["ours_http_client"].append(
            concurrent_seconds(lambda: http.request("GET", url, breaker="bench-concurrency"), threads)
        )
    upstream.stop()

    # Fail-fast: open both breakers with real failures, then time rejected calls.
    failing = breakers.get_breaker("bench-fail-fast")
    for _ in range(failing.fail_max):
        try:
            failing.call(_fail)
        except ConnectionError:
            pass
    status = breakers.breaker_status("bench-fail-fast")
    if status is None or status.state != breakers.STATE_OPEN:
        raise RuntimeError(f"the breaker did not open after {failing.fail_max} failures: {status}")
    plain_failing = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)
    for _ in range(5):
        try:
            plain_failing.call(_fail)
        except (ConnectionError, pybreaker.CircuitBreakerError):
            pass
    return {
        "threads": threads,
        "upstream_seconds": upstream_seconds,
        "concurrent_seconds": timings,
        "shared": status.shared,
        "redis": bool(settings.REDIS_URL),
        "rejected_call_us": per_call_microseconds(
            lambda: failing.call(_fail), breakers.CircuitOpenError, fail_fast_calls
        ),
        "pybreaker_rejected_call_us": per_call_microseconds(
            lambda: plain_failing.call(_fail), pybreaker.CircuitBreakerError, fail_fast_calls
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--upstream-seconds", type=float, default=0.2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fail-fast-calls", type=int, default=2000)
    args = parser.parse_args(argv)
    django.setup()
    result = measure(args.threads, args.upstream_seconds, args.rounds, args.fail_fast_calls)
    print(JSON_MARK + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
