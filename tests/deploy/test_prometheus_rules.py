"""The alert rules are valid, unit-tested, in sync with the PrometheusRule, and about real series.

promtool (Debian ``prometheus``) checks and unit-tests deploy/prometheus; the PrometheusRule in
monitoring.yaml is generated from the same file; every series and label the rules select exists in
what the app exposes or in the cluster's standard exporters; each alert has a runbook.
"""

from __future__ import annotations

import re
import runpy
import sys

import pytest
import yaml

from .code_facts import grouping_labels, selectors
from .conftest import DEPLOY, REPO, find, run, tool, unknown_series_and_labels

RULES_FILE = DEPLOY / "prometheus" / "rules" / "dotmac-platform.rules.yml"
SYNC_SCRIPT = DEPLOY / "prometheus" / "sync_prometheusrule.py"
RUNBOOK_BASE_ANNOTATION = runpy.run_path(str(SYNC_SCRIPT))["RUNBOOK_BASE_ANNOTATION"]
TESTS_FILE = DEPLOY / "prometheus" / "tests" / "dotmac-platform.test.yml"
OPERATIONS_DOC = REPO / "docs" / "OPERATIONS.md"
# The alerts the production specification asks for.
SPECIFIED_ALERTS = {
    "PlatformDown",
    "HighErrorRate",
    "HighLatency",
    "CircuitBreakerOpen",
    "DatabaseConnectionFailures",
    "HighMemory",
    "HighCPU",
}
# kube-state-metrics' label for the name of each kind of workload.
WORKLOAD_LABELS = {
    "deployment": "Deployment",
    "cronjob": "CronJob",
    "job_name": "Job",
    "horizontalpodautoscaler": "HorizontalPodAutoscaler",
}
# What the review of the deployment asked for on top: the workloads as Kubernetes sees them.
WORKLOAD_ALERTS = {
    "PodCrashLooping",
    "PodRestarting",
    "DeploymentReplicasUnavailable",
    "AutoscalerAtMaximum",
    "MigrationJobFailed",
    "ActivationRunsFailing",
}


@pytest.fixture(scope="module")
def rules() -> list[dict]:
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_checks_the_rule_file(rules):
    result = run([tool("promtool"), "check", "rules", str(RULES_FILE)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_promtool_unit_tests_pass():
    result = run([tool("promtool"), "test", "rules", str(TESTS_FILE)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_waits_between_one_and_five_minutes(rules):
    """Longer spans (a crash loop's 2-minute window, the HPA's 15 minutes at its maximum) live in the
    expression: the end-to-end suite runs the rules with every ``for`` divided by 60."""
    units = {"m": 60, "s": 1}
    for rule in rules:
        duration = re.fullmatch(r"([0-9]+)([ms])", rule.get("for", "0s"))
        assert duration, rule["alert"]
        assert 60 <= int(duration.group(1)) * units[duration.group(2)] <= 300, rule["alert"]


def test_every_alert_has_a_case_that_fires_and_one_that_does_not(rules):
    alerts = {r["alert"] for r in rules if "alert" in r}
    assert alerts >= SPECIFIED_ALERTS | WORKLOAD_ALERTS
    cases = [
        case for test in yaml.safe_load(TESTS_FILE.read_text())["tests"] for case in test["alert_rule_test"]
    ]
    for alert in alerts:
        fired = [c for c in cases if c["alertname"] == alert and c["exp_alerts"]]
        quiet = [c for c in cases if c["alertname"] == alert and c["exp_alerts"] == []]
        assert fired, f"{alert}: no unit test where it fires"
        assert quiet, f"{alert}: no unit test where it stays quiet"
        for case in fired:
            for expected in case["exp_alerts"]:
                assert expected.get("exp_annotations"), f"{alert}: the firing test checks the annotations"


def test_prometheus_rule_in_monitoring_yaml_is_generated_from_the_rule_file(rendered):
    result = run([sys.executable, str(SYNC_SCRIPT), "--check"])
    assert result.returncode == 0, result.stderr
    prometheus_rule = find(rendered, "PrometheusRule", "dotmac-platform")
    assert prometheus_rule["spec"] == yaml.safe_load(RULES_FILE.read_text())


def test_prometheus_rule_selects_the_job_prometheus_sets_from_the_servicemonitor(rendered, rules):
    monitor = find(rendered, "ServiceMonitor", "dotmac-platform")
    services = [
        o
        for o in rendered
        if o["kind"] == "Service"
        and monitor["spec"]["selector"]["matchLabels"].items() <= o["metadata"].get("labels", {}).items()
    ]
    assert len(services) == 1
    service = services[0]
    # prometheus-operator: job = the Service's label named by jobLabel, else the Service's name;
    # a relabeling whose targetLabel is "job" overrides both.
    job = service["metadata"]["labels"].get(monitor["spec"].get("jobLabel", ""), service["metadata"]["name"])
    for endpoint in monitor["spec"]["endpoints"]:
        for relabel in endpoint.get("relabelings", []):
            if relabel.get("targetLabel") == "job":
                job = relabel["replacement"]
    jobs = {m["job"] for r in rules for _, m in selectors(r["expr"]) if "job" in m}
    assert jobs == {job}
    # Rules that read the app's own series select it by job; cluster series by namespace and container.
    deployment = find(rendered, "Deployment", "dotmac-platform")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    # Resource series (cAdvisor's usage, kube-state-metrics' limits) compare the app's container with
    # its own limits; the workload series of kube-state-metrics cover every workload of the namespace.
    per_container = ("container_", "kube_pod_container_resource_")
    workloads = {(o["kind"], o["metadata"]["name"]) for o in rendered}
    for rule in rules:
        for name, matchers in selectors(rule["expr"]):
            if name.startswith(("container_", "kube_")):
                assert matchers["namespace"] == deployment["metadata"]["namespace"], rule["alert"]
                assert "job" not in matchers, f"{rule['alert']}: {name} is not the app's series"
                if name.startswith(per_container):
                    assert matchers["container"] == container["name"], rule["alert"]
                # A workload named in a selector exists in the manifests.
                for label, kind in WORKLOAD_LABELS.items():
                    if label in matchers:
                        assert (kind, matchers[label]) in workloads, f"{rule['alert']}: {matchers[label]}"
            else:
                assert matchers.get("job") == job, f"{rule['alert']}: {name} without job"


def test_rules_select_only_series_and_labels_that_exist(rules, served_metrics):
    problems = unknown_series_and_labels([r["expr"] for r in rules], served_metrics)
    assert not problems, problems


def test_rule_thresholds_match_what_the_code_records(rules):
    from django.conf import settings

    from apps.ops.metrics.definitions import REQUEST_DURATION_BUCKETS

    by_name = {r["alert"]: r for r in rules}
    # p95 > 1 s is exact only with a bucket boundary at 1 s.
    assert 1.0 in REQUEST_DURATION_BUCKETS
    assert "> 1\n" in by_name["HighLatency"]["expr"]
    # health_check_status: 1 pass, 0.5 warn, 0 fail. Each dependency alert must select the label
    # values the app really exports for its readiness check (database:default, cache ...), and fire
    # on warn as well as fail: an unreachable database or Redis reports warn and never takes the pod
    # out of the Service, so "== 0" would never fire.
    from apps.ops.health.base import Status
    from apps.ops.health.config import readiness_checks

    exported = [check.key for check in readiness_checks()]
    for alert, check_name in [
        ("DatabaseConnectionFailures", "database"),
        ("RedisConnectionFailures", "cache"),
    ]:
        assert check_name in settings.HEALTH_READY_CHECKS
        ((_, matchers),) = selectors(by_name[alert]["expr"])
        matched = [key for key in exported if re.fullmatch(matchers["check"], key)]
        assert matched and all(key.split(":")[0] == check_name for key in matched), (alert, exported)
        threshold = re.search(r"\)\s*<\s*([0-9.]+)\s*$", by_name[alert]["expr"])
        assert threshold, f"{alert}: fires below a threshold, on the worst check of a pod"
        assert Status.WARN.gauge_value < float(threshold.group(1)) <= Status.PASS.gauge_value, alert
    assert by_name["DatabaseConnectionFailures"]["labels"]["severity"] == "critical"
    # Without Redis the site still serves (cache bypassed, breakers on local state).
    assert by_name["RedisConnectionFailures"]["labels"]["severity"] == "warning"
    # Open and half-open alike: "not closed", whatever the other states' codes are.
    from apps.ops.breakers import STATE_CLOSED, STATE_CODES, STATE_HALF_OPEN, STATE_OPEN

    threshold = re.search(r"\)\s*>=\s*([0-9.]+)\s*$", by_name["CircuitBreakerOpen"]["expr"])
    assert threshold, "CircuitBreakerOpen fires at or above a state code"
    assert STATE_CODES[STATE_CLOSED] < float(threshold.group(1))
    assert float(threshold.group(1)) <= min(STATE_CODES[STATE_OPEN], STATE_CODES[STATE_HALF_OPEN])
    # The transitions counter's "to" label carries the state names; the flapping alert counts openings
    # and closings.
    states = [m["to"] for _, m in selectors(by_name["CircuitBreakerFlapping"]["expr"])]
    assert sorted(states) == sorted([STATE_OPEN, STATE_CLOSED])


def test_alerts_name_what_is_involved_and_link_a_runbook(rules, rendered):
    document = OPERATIONS_DOC.read_text()
    # Absolute links from one base, which the PrometheusRule carries for overlays to rewrite.
    prometheus_rule = find(rendered, "PrometheusRule", "dotmac-platform")
    base = prometheus_rule["metadata"]["annotations"][RUNBOOK_BASE_ANNOTATION]
    assert re.fullmatch(r"https://[^\s#]+", base), base
    headings = {
        re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", document, re.M)
    }
    for rule in rules:
        alert = rule["alert"]
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook_url"} <= set(annotations), alert
        page, _, anchor = annotations["runbook_url"].partition("#")
        assert page == base, f"{alert}: the runbook link starts with the base {base}"
        assert anchor in headings, f"{alert}: no runbook section {anchor!r}"
        assert rule["labels"]["severity"] in {"critical", "warning"}
        # Every label an annotation names survives the rule's aggregation.
        kept = grouping_labels(rule["expr"])
        for label in re.findall(r"\$labels\.(\w+)", " ".join(annotations.values())):
            assert label in kept, f"{alert}: annotation uses {label}, which the expression aggregates away"
    named = {
        "CircuitBreakerOpen": "breaker",
        "HighErrorRate": "tenant",
        "HighLatency": "tenant",
        "DatabaseConnectionFailures": "pod",
        "HighMemory": "pod",
        "HighCPU": "pod",
        "RouteHighErrorRate": "route",
        "CircuitBreakerFlapping": "breaker",
        "PodCrashLooping": "pod",
        "PodRestarting": "pod",
        "DeploymentReplicasUnavailable": "deployment",
        "AutoscalerAtMaximum": "horizontalpodautoscaler",
        "MigrationJobFailed": "job_name",
        "ActivationRunsFailing": "cronjob",
    }
    by_name = {r["alert"]: r for r in rules}
    for alert, label in named.items():
        assert label in grouping_labels(by_name[alert]["expr"]), f"{alert} keeps the {label} label"
        assert f"$labels.{label}" in by_name[alert]["annotations"]["summary"], f"{alert} names the {label}"
