"""The benchmark's smoke mode produces every figure the benchmark promises (its values are not judged).

``python -m bench.run --smoke`` starts its own PostgreSQL, Redis and gunicorn servers with tiny
sizes. A figure that cannot be measured (a feature missing from the build, a measurement that
failed) makes this test fail with the reason the benchmark gave.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_DIR

pytestmark = [pytest.mark.slow, pytest.mark.servers]

# Every figure of the benchmark, by id (see docs/BENCHMARKS.md).
REQUIRED_FIGURES = {
    "ceiling",
    "live_vs_ceiling",
    "ops_overhead_trivial",
    "metrics_middleware_overhead",
    "metrics_middleware_peer",
    "ops_overhead_real_page",
    "db_pool_vs_persistent",
    "live_latency_healthy",
    "ready_latency_healthy",
    "ready_latency_uncached",
    "ready_latency_redis_frozen",
    "live_latency_redis_frozen",
    "metrics_scrape_recycles",
    "metrics_scrape_tenants_routes",
    "metrics_hostile_traffic",
    "metrics_growth_by_tenants",
    "memory_growth",
    "memory_growth_again",
    "breaker_concurrency",
    "breaker_fail_fast_shared",
    "breaker_fail_fast_database",
    "drain_0_inflight",
    "drain_1_inflight",
    "drain_many_inflight",
    "subscriber_list_10k",
}


def test_bench_smoke_produces_every_figure(tmp_path):
    report = tmp_path / "bench.json"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "PYTEST_"))}
    completed = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--json", str(report)],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert report.exists(), f"no report written:\n{completed.stdout}\n{completed.stderr[-5000:]}"
    figures = {figure["figure"]: figure for figure in json.loads(report.read_text())["figures"]}

    missing = REQUIRED_FIGURES - set(figures)
    assert not missing, f"figures missing from the run: {sorted(missing)}"
    not_measured = {name: figure["error"] for name, figure in figures.items() if not figure["produced"]}
    assert not not_measured, f"figures not measured: {not_measured}\n{completed.stderr[-5000:]}"
    for name in REQUIRED_FIGURES:
        assert figures[name]["measured"], f"{name} has no measured value"
    assert completed.returncode == 0, completed.stderr[-5000:]
