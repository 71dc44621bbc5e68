"""Degrade, don't die: a shared dependency's outage under load, on a fleet built from the manifests.

Each test is one scenario of ``scenarios.py``, held to its targets. The short form runs in
``make test``; ``make fleet`` runs the full form and prints the figures.
"""

from __future__ import annotations

import json

import pytest

from apps.ops.breakers.config import DEFAULT_CONFIG
from tests.fleet import scenarios

# The full form of the provisioning scenario alone takes about 3 minutes.
pytestmark = [pytest.mark.fleet, pytest.mark.servers, pytest.mark.slow, pytest.mark.timeout(600)]


def test_a_redis_outage_degrades_pages_without_failing_them(fleet_factory, form, record):
    fleet = fleet_factory()
    figures = record("1. Redis stopped, then frozen", scenarios.redis_outage(fleet, form))
    healthy_p99 = figures["healthy"]["p99_seconds"]
    for outage in ("stopped", "frozen"):
        measured = figures[outage]
        assert measured["requests"] > 0
        assert measured["success_ratio"] >= 0.99, (outage, measured)
        assert measured["p99_seconds"] <= 2 * healthy_p99, (outage, measured, healthy_p99)
    assert figures["endpoints_removed"] == 0
    assert figures["restarts"] == 0
    assert figures["cache_hits_after_restart_seconds"] <= 5
    assert figures["cache_hits_after_thaw_seconds"] <= 5
    assert figures["lost"] == 0 and figures["duplicated"] == 0


def test_a_postgresql_outage_fails_fast_with_503_and_recovers_within_5_seconds(fleet_factory, form, record):
    fleet = fleet_factory()
    figures = record("2. PostgreSQL down", scenarios.postgres_outage(fleet, form))
    assert figures["outage"]["requests"] > 0
    assert figures["failed"] > 0  # the outage was felt: pages need the database
    assert figures["failed_not_503"] == 0
    assert figures["slowest_failure_seconds"] <= 5
    assert figures["failed_from_5s_after_back"] == 0
    assert figures["restarts"] == 0 and figures["liveness_missed"] == 0
    assert figures["worker_timeouts"] == 0
    assert figures["endpoints_removed"] == 0  # readiness said nothing a shared outage would change
    assert figures["lost"] == 0 and figures["duplicated"] == 0


def test_a_provisioning_outage_opens_the_breaker_fleet_wide_and_pending_activations_catch_up(
    fleet_factory, form, record
):
    reset_timeout = form.breaker_reset_timeout or DEFAULT_CONFIG.reset_timeout
    overrides = {}
    if form.breaker_reset_timeout:
        overrides["CIRCUIT_BREAKERS"] = json.dumps(
            {"provisioning": {"reset_timeout": form.breaker_reset_timeout}}
        )
    fleet = fleet_factory(pending=12, overrides=overrides)
    cron_period = form.cron_period or fleet.cronjob_spec.period_seconds
    figures = record(
        "3. Provisioning API answering 500",
        scenarios.provisioning_outage(
            fleet,
            form,
            fail_max=DEFAULT_CONFIG.fail_max,
            reset_timeout=reset_timeout,
            cron_period=cron_period,
        ),
    )
    assert figures["activation_pods"] == 2  # staff activated from every pod
    assert (
        figures["pending_at_the_end_of_the_outage"] == figures["pending"]
    )  # nothing lost, nothing half-done
    assert figures["upstream_failures_before_open"] == figures["fail_max"]
    assert figures["provisioned_once"] == figures["pending"]
    assert figures["provisioned_twice"] == 0
    assert figures["keys_per_subscriber_max"] == 1
    assert figures["seconds_to_all_active_after_breaker_admits"] <= cron_period + 5  # one period, one run


def test_slow_clients_at_one_pod_never_make_it_miss_a_probe(fleet_factory, form, record):
    fleet = fleet_factory()
    figures = record("4. 20 slow clients at one pod", scenarios.slow_clients(fleet, form))
    assert figures["liveness_probes"] >= form.slow_clients - 1
    assert figures["liveness_missed"] == 0
    assert figures["readiness_over_deadline"] == 0
    assert figures["restarts"] == 0


def test_slow_upstream_calls_on_every_request_thread_never_make_a_pod_miss_a_probe(
    fleet_factory, form, record
):
    fleet = fleet_factory(pending=80)  # enough for every client to wait on the API all along
    figures = record("4b. every request thread on a slow activation", scenarios.slow_activations(fleet, form))
    assert figures["activating_clients"] > figures["request_threads"]
    assert figures["liveness_probes"] >= form.slow_clients - 1
    assert figures["liveness_missed"] == 0
    assert figures["readiness_over_deadline"] == 0
    assert figures["restarts"] == 0
