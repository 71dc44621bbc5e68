"""The fleet's routine operations under load: rolling update, node drain, scaling, a killed pod.

Each test is one operation of ``operations.py`` on a fleet of the manifests' replica count, at the
propagation lags of its form (``conftest.py``), held to its targets. The short form runs in
``make test``; ``make fleet`` runs the full one and prints the figures.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from tests.fleet import operations
from tests.fleet.budget import TerminationBudget, keep_alive, longest_request, termination_budget
from tests.fleet.controller import PROPAGATION_LAGS
from tests.fleet.manifests import web_tier

pytestmark = [pytest.mark.fleet, pytest.mark.servers, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture
def fleet(fleet_factory, propagation_lag):
    return fleet_factory(propagation_lag=propagation_lag, replicas=None)  # the Deployment's replicas


def _no_request_failed_and_no_post_lost_or_doubled(figures: dict) -> None:
    assert figures["requests"] > 0
    assert figures["failed"] == 0, figures["failed_statuses"]
    assert figures["acknowledged_posts"] > 0
    assert figures["acknowledged_lost"] == 0
    assert figures["applied_twice"] == 0


def _every_deleted_pod_stopped_within_its_grace_period(figures: dict) -> None:
    assert figures["slowest_stop_seconds"] <= figures["grace_period_seconds"]  # no pod SIGKILLed


def test_a_rolling_update_replaces_every_pod_without_a_failed_request(fleet, form, record, propagation_lag):
    figures = record(f"5. Rolling update, lag {propagation_lag:g} s", operations.rolling_update(fleet, form))
    _no_request_failed_and_no_post_lost_or_doubled(figures)
    _every_deleted_pod_stopped_within_its_grace_period(figures)
    assert figures["pods_deleted"] == fleet.web.replicas  # every replica replaced
    assert figures["versions_reported"] == ["fleet-2"] * fleet.web.replicas
    # The strategy held: never fewer endpoints than replicas - maxUnavailable.
    assert figures["fewest_endpoints"] >= fleet.web.replicas - fleet.web.max_unavailable
    assert figures["restarts"] == 0


def test_a_node_drain_evicts_two_pods_within_the_pdb_without_a_failed_request(
    fleet, form, record, propagation_lag
):
    figures = record(f"6. Node drain (2 pods), lag {propagation_lag:g} s", operations.node_drain(fleet, form))
    _no_request_failed_and_no_post_lost_or_doubled(figures)
    _every_deleted_pod_stopped_within_its_grace_period(figures)
    assert figures["pods_deleted"] == 2
    assert figures["evictions_refused"] >= 1  # the PDB held the second eviction back
    assert figures["fewest_endpoints"] >= fleet.web.pdb_min_available


def test_scaling_out_and_back_in_fails_no_request(fleet, form, record, propagation_lag):
    figures = record(
        f"7. Scale 3 -> 6 -> 3, lag {propagation_lag:g} s", operations.scale_out_and_in(fleet, form)
    )
    _no_request_failed_and_no_post_lost_or_doubled(figures)
    _every_deleted_pod_stopped_within_its_grace_period(figures)
    assert figures["pods_deleted"] == figures["scaled_to"] - figures["replicas"]
    assert figures["restarts"] == 0


def test_a_killed_pod_fails_only_its_requests_in_flight_and_is_ready_again_within_its_startup_budget(
    fleet_factory, form, record, propagation_lag
):
    fleet = fleet_factory(propagation_lag=propagation_lag, replicas=None, pending=6)
    figures = record(f"8. kill -9 of one pod, lag {propagation_lag:g} s", operations.killed_pod(fleet, form))
    assert figures["activations_in_flight_on_the_killed_pod"] >= 1
    # Every activation in flight on it was cut (nginx passes no POST to another pod), nothing else.
    assert figures["failed_in_flight_on_the_killed_pod"] >= figures["activations_in_flight_on_the_killed_pod"]
    assert figures["failed_otherwise"] == 0
    assert figures["failed_in_flight_on_the_killed_pod"] <= figures["request_threads"]
    assert figures["activations_acknowledged_not_active"] == 0
    assert figures["acknowledged_lost"] == 0
    assert figures["applied_twice"] == 0
    assert figures["restarts"] == 1
    assert figures["ready_again_after_seconds"] <= figures["startup_budget_seconds"]


def test_posts_on_upstream_connections_idle_for_about_the_shorter_keepalive_timeout_never_get_a_502(
    fleet_factory, form, record
):
    overlay = {}
    if form.ingress_keepalive_timeout:
        overlay["upstream-keepalive-timeout"] = form.ingress_keepalive_timeout
    fleet = fleet_factory(ingress_settings=overlay)
    timeouts = keep_alive(fleet.web, overlay)
    assert timeouts.problems() == []  # the proxy closes first, as in the manifests
    figures = record("9. POSTs after the upstream idled", operations.idle_upstream_posts(fleet, timeouts))
    assert figures["warm_failed"] == 0
    assert figures["bad_gateway"] == 0 and figures["failed"] == 0, figures["statuses"]
    assert figures["acknowledged_posts"] == figures["posts"] == 50
    assert figures["acknowledged_lost"] == 0 and figures["applied_twice"] == 0
    # What the lanes were for: under the timeout the idle connection carried the POST, over it a new one.
    assert figures["under_the_timeout_reused"] == figures["under_the_timeout"] > 0
    assert figures["over_the_timeout_reused"] == 0 and figures["over_the_timeout"] > 0


def test_the_longest_request_sent_to_a_pod_at_the_last_moment_before_its_deletion_gets_a_clean_answer(
    fleet_factory, record, propagation_lag
):
    fleet = fleet_factory(propagation_lag=propagation_lag, pending=1)
    budget = _budget_of(fleet)
    figures = record(
        f"10. Longest request at a deletion, lag {propagation_lag:g} s",
        operations.longest_request_at_deletion(fleet, budget),
    )
    assert figures["sent_after_deletion_seconds"] < propagation_lag  # the ingress could still send it
    assert figures["request_seconds"] >= budget.longest_request  # it waited the breakers' longest
    assert figures["status"] == 302, figures  # the app's answer (the subscriber stays pending), not a 502
    assert figures["subscriber_status"] == "pending"
    assert figures["workers_killed_at_the_graceful_deadline"] == 0
    assert figures["pod_stopped_after_seconds"] <= figures["grace_period_seconds"]


def _budget_of(fleet) -> TerminationBudget:
    """The timing budget of the manifests, with the longest request of this fleet's environment."""
    return dataclasses.replace(termination_budget(fleet.web), longest_request=longest_request(fleet.env))


def test_a_request_longer_than_the_budget_allows_is_cut_at_the_graceful_deadline(fleet_factory, form, record):
    # What the budget test guards against, shown happening: a request_timeout that outlasts the time a
    # request sent at the last moment has (an overlay of CIRCUIT_BREAKERS) gets its worker killed.
    if form.name == "short":
        pytest.skip("the counterpart of the clean answer runs in the full form")
    lag = max(PROPAGATION_LAGS)
    allowed = termination_budget(web_tier()).time_for_a_request(propagation_lag=lag)
    too_long = {"CIRCUIT_BREAKERS": json.dumps({"provisioning": {"request_timeout": allowed + 6}})}
    fleet = fleet_factory(propagation_lag=lag, pending=1, overrides=too_long)
    budget = _budget_of(fleet)
    assert budget.problems(propagation_lag=lag)  # the budget test would fail on these values
    figures = record(
        f"10b. Request longer than the budget at a deletion, lag {lag:g} s",
        operations.longest_request_at_deletion(fleet, budget),
    )
    assert figures["status"] == 502, figures  # cut: the ingress answers for the pod
    assert figures["request_seconds"] < budget.longest_request
    assert figures["workers_killed_at_the_graceful_deadline"] >= 1
    assert figures["subscriber_status"] == "pending"
    assert figures["pod_stopped_after_seconds"] <= figures["grace_period_seconds"]


# The migration Job as the manifests ship it (lock_timeout through PGOPTIONS in its environment:
# libpq applies it to every connection `migrate` opens), and without it, for comparison.
WITHOUT_LOCK_TIMEOUT = {"PGOPTIONS": ""}


@pytest.mark.parametrize(
    "job_overlay", [{}, WITHOUT_LOCK_TIMEOUT], ids=["job_as_shipped", "without_lock_timeout"]
)
def test_an_expand_migration_behind_a_long_transaction_fails_fast_and_is_retried_while_pages_answer(
    fleet_factory, form, record, job_overlay
):
    if job_overlay and form.name == "short":
        pytest.skip("the comparison without lock_timeout runs in the full form")
    fleet = fleet_factory()
    figures = operations.migration_behind_a_long_transaction(fleet, form, job_overlay=job_overlay)
    lock_timeout = figures["lock_timeout_seconds"]
    assert bool(lock_timeout) == (job_overlay != WITHOUT_LOCK_TIMEOUT), "the Job as shipped sets lock_timeout"
    record(f"11. Migration behind a long transaction, lock_timeout {lock_timeout:g} s", figures)
    assert figures["backfilled_rows"] >= figures["rows_before"] > 0  # until no row was left without it
    assert figures["applied_after_the_transaction_seconds"] >= 0  # it waited for the transaction
    _no_request_failed_and_no_post_lost_or_doubled(figures)
    if not lock_timeout:  # what lock_timeout prevents: every page on the table queued behind it
        assert figures["slowest_page_while_blocked_seconds"] >= figures["long_transaction_seconds"] - 1
        return
    assert figures["attempts_failed_fast"] >= 1
    assert figures["slowest_attempt_seconds"] <= lock_timeout + 1
    assert figures["slowest_page_while_blocked_seconds"] <= lock_timeout + 1
