"""The web pod's timing budget (``budget.py``): the shipped manifests keep it, and a manifest value
that breaks it makes it fail, shown on modified copies of the rendered objects."""

from __future__ import annotations

import copy
import json

import pytest

from tests.fleet.budget import keep_alive, termination_budget
from tests.fleet.controller import PROPAGATION_LAGS
from tests.fleet.manifests import WEB_COMPONENT, rendered, web_tier

LONGEST_LAG = max(PROPAGATION_LAGS)


def test_the_shipped_manifests_stop_a_pod_before_sigkill_and_drain_past_the_propagation_lag():
    budget = termination_budget(web_tier())
    assert budget.problems(propagation_lag=LONGEST_LAG) == []
    assert budget.longest_stop <= budget.grace_period
    assert budget.still_accepting >= LONGEST_LAG
    assert budget.longest_request < budget.time_for_a_request(propagation_lag=LONGEST_LAG)


def _modified(change) -> tuple[dict, ...]:
    """A deep copy of the rendered objects with ``change(deployment, config_map)`` applied."""
    documents = copy.deepcopy(rendered())
    [deployment] = [
        document
        for document in documents
        if document["kind"] == "Deployment"
        and document["metadata"]["labels"].get("app.kubernetes.io/component") == WEB_COMPONENT
    ]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    [source] = container["envFrom"]
    [config_map] = [
        document
        for document in documents
        if document["kind"] == "ConfigMap" and document["metadata"]["name"] == source["configMapRef"]["name"]
    ]
    change(deployment["spec"]["template"]["spec"], container, config_map["data"])
    return tuple(documents)


def _shorter_grace_period(pod_spec, container, config) -> None:
    pod_spec["terminationGracePeriodSeconds"] = int(config["GUNICORN_GRACEFUL_TIMEOUT"])


def _longer_graceful_timeout(pod_spec, container, config) -> None:
    config["GUNICORN_GRACEFUL_TIMEOUT"] = str(pod_spec["terminationGracePeriodSeconds"])


def _pre_stop_sleep_on_top(pod_spec, container, config) -> None:
    container["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", "15"]}}}


def _graceful_timeout_overridden_in_env(pod_spec, container, config) -> None:
    container["env"].append({"name": "GUNICORN_GRACEFUL_TIMEOUT", "value": "60"})


@pytest.mark.parametrize(
    "change",
    [
        _shorter_grace_period,
        _longer_graceful_timeout,
        _pre_stop_sleep_on_top,
        _graceful_timeout_overridden_in_env,
    ],
)
def test_a_manifest_value_that_makes_the_stop_outlast_the_grace_period_breaks_the_budget(change):
    budget = termination_budget(web_tier(_modified(change)))
    [problem] = budget.problems(propagation_lag=LONGEST_LAG)
    assert "terminationGracePeriodSeconds" in problem
    assert budget.longest_stop > budget.grace_period


def _drain_delay_below_the_lag(pod_spec, container, config) -> None:
    config["DRAIN_DELAY_SECONDS"] = str(LONGEST_LAG - 1)


def _drain_delay_left_to_the_default(pod_spec, container, config) -> None:
    # Outside production, deploy/gunicorn.conf.py's default is no drain delay at all.
    del config["DRAIN_DELAY_SECONDS"]
    config["DJANGO_ENV"] = "staging"


@pytest.mark.parametrize("change", [_drain_delay_below_the_lag, _drain_delay_left_to_the_default])
def test_a_drain_delay_shorter_than_the_propagation_lag_breaks_the_budget(change):
    budget = termination_budget(web_tier(_modified(change)))
    problems = budget.problems(propagation_lag=LONGEST_LAG)
    assert any("shorter than the propagation lag" in problem for problem in problems), problems
    assert budget.still_accepting < LONGEST_LAG


def _longer_outbound_calls(pod_spec, container, config) -> None:
    config["CIRCUIT_BREAKERS"] = json.dumps({"provisioning": {"request_timeout": 45}})


def _shorter_graceful_timeout(pod_spec, container, config) -> None:
    config["GUNICORN_GRACEFUL_TIMEOUT"] = "25"


@pytest.mark.parametrize("change", [_longer_outbound_calls, _shorter_graceful_timeout])
def test_a_request_that_may_outlast_the_graceful_timeout_breaks_the_budget(change):
    budget = termination_budget(web_tier(_modified(change)))
    [problem] = budget.problems(propagation_lag=LONGEST_LAG)
    assert "may be cut" in problem
    assert budget.longest_request >= budget.time_for_a_request(propagation_lag=LONGEST_LAG)


def test_a_pre_stop_sleep_counts_towards_covering_the_propagation_lag():
    def short_drain_after_a_sleep(pod_spec, container, config) -> None:
        config["DRAIN_DELAY_SECONDS"] = "1"
        container["lifecycle"] = {"preStop": {"exec": {"command": ["sh", "-c", "sleep 3"]}}}

    budget = termination_budget(web_tier(_modified(short_drain_after_a_sleep)))
    assert budget.still_accepting == 4
    assert budget.problems(propagation_lag=LONGEST_LAG) == []


def test_the_ingress_closes_an_idle_upstream_connection_before_the_pod_does():
    timeouts = keep_alive(web_tier())
    assert timeouts.problems() == []
    assert timeouts.pod_keepalive > timeouts.proxy_idle_timeout


def _pod_keepalive_below_the_proxy(pod_spec, container, config) -> None:
    config["GUNICORN_KEEPALIVE"] = "5"  # the value shipped before, "below the ingress' 60 s"


def _pod_keepalive_left_to_the_default(pod_spec, container, config) -> None:
    del config["GUNICORN_KEEPALIVE"]  # deploy/gunicorn.conf.py's default


@pytest.mark.parametrize("change", [_pod_keepalive_below_the_proxy, _pod_keepalive_left_to_the_default])
def test_a_pod_keepalive_not_longer_than_the_proxy_idle_timeout_breaks_the_order(change):
    timeouts = keep_alive(web_tier(_modified(change)))
    [problem] = timeouts.problems()
    assert "502" in problem
    assert timeouts.shorter == timeouts.pod_keepalive


def test_a_proxy_idle_timeout_raised_in_the_controller_configmap_breaks_the_order():
    web = web_tier()
    raised = keep_alive(web, {"upstream-keepalive-timeout": keep_alive(web).pod_keepalive})
    [problem] = raised.problems()
    assert "upstream keep-alive timeout" in problem
