"""Circuit breaker figures: concurrent calls through one closed breaker, and the fail-fast cost.

Measured in a Django process of its own (``bench.breaker_calls``), once with the breaker state in
Redis (production) and once without ``REDIS_URL`` (the state in the database, PostgreSQL here).
"""

from __future__ import annotations

import statistics

from bench.context import Bench
from bench.report import Row, marked_json

from . import Figure

# Each round of plain pybreaker takes calls x upstream time (1.6 s); its figure is not noisy.
BREAKER_ROUNDS = 3


def _run(bench: Bench, *, redis: bool) -> dict:
    sizes = bench.sizes
    output = bench.python(
        "-m", "bench.breaker_calls",
        "--threads", str(sizes.breaker_calls),
        "--upstream-seconds", str(sizes.breaker_upstream_seconds),
        "--rounds", str(BREAKER_ROUNDS if sizes.rounds > 1 else 1),
        "--fail-fast-calls", str(sizes.fail_fast_calls),
        env={} if redis else {"REDIS_URL": ""},
    )  # fmt: skip
    result = marked_json(output)
    if not result["shared"] or result["redis"] != redis:
        raise RuntimeError(f"expected shared state {'in Redis' if redis else 'in the database'}: {result}")
    return result


def breaker_figures(bench: Bench) -> list[Row]:
    shared = _run(bench, redis=True)
    database = _run(bench, redis=False)
    threads, upstream = shared["threads"], shared["upstream_seconds"]
    totals = {name: statistics.median(values) for name, values in shared["concurrent_seconds"].items()}
    limit = 2 * upstream
    concurrency = Row(
        "breaker_concurrency",
        f"breaker concurrency: {threads} concurrent calls, one closed breaker, "
        f"{upstream * 1000:.0f} ms upstream",
        measured=(
            f"ours {totals['ours']:.3f} s (through apps.ops.http {totals['ours_http_client']:.3f} s); "
            f"plain pybreaker {totals['pybreaker']:.3f} s"
        ),
        target=f"ours ≤ {limit:g} s (pybreaker ≈ {threads} x {upstream:g} s)",
        met=max(totals["ours"], totals["ours_http_client"]) <= limit,
        data={"median_seconds": totals, "rounds": shared["concurrent_seconds"]},
    )
    fail_fast_shared = Row(
        "breaker_fail_fast_shared",
        "breaker fail-fast: rejected call when open, shared state (Redis)",
        measured=f"{shared['rejected_call_us']:,.0f} µs per call (plain pybreaker, local: "
        f"{shared['pybreaker_rejected_call_us']:,.0f} µs)",
        target="≤ 1 ms",
        met=shared["rejected_call_us"] <= 1000,
        data=shared,
    )
    fail_fast_database = Row(
        "breaker_fail_fast_database",
        "breaker fail-fast: rejected call when open, state in the database (no Redis)",
        measured=f"{database['rejected_call_us']:,.0f} µs per call (plain pybreaker: "
        f"{database['pybreaker_rejected_call_us']:,.0f} µs)",
        target="recorded",
        data=database,
    )
    return [concurrency, fail_fast_shared, fail_fast_database]


FIGURES = [
    Figure(("breaker_concurrency", "breaker_fail_fast_shared", "breaker_fail_fast_database"), breaker_figures)
]
