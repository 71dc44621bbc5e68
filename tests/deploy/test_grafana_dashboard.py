"""The Grafana dashboard: every PromQL expression parses (promtool) and selects series that exist.

promtool has no "parse this query" command, so each expression, with Grafana's variables replaced
by sample values, becomes a recording rule of a temporary rule file that ``promtool check rules``
parses in full.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from .code_facts import grouping_labels, selectors
from .conftest import DEPLOY, find, run, tool, unknown_series_and_labels

DASHBOARD = DEPLOY / "grafana" / "dotmac-platform.json"
# Grafana's built-in interval variables and the dashboard's own, as a query would see them.
SAMPLE_VALUES = {
    "__rate_interval": "2m",
    "__interval": "1m",
    "__range": "6h",
    "tenant": "acme|beta",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_LABEL_VALUES = re.compile(r"^label_values\((.+),\s*(\w+)\)$", re.S)


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(dashboard: dict) -> list[dict]:
    flat = []
    for panel in dashboard["panels"]:
        flat.append(panel)
        flat += panel.get("panels", [])
    return [p for p in flat if p["type"] != "row"]


def expressions(dashboard: dict) -> dict[str, str]:
    """Every PromQL expression, by where it is: panel targets and query variables (label_values)."""
    found = {}
    for panel in panels(dashboard):
        for target in panel["targets"]:
            found[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = _LABEL_VALUES.match(variable["query"]["query"])
            assert match, f"variable {variable['name']}: only label_values(selector, label) queries are used"
            found[f"variable {variable['name']}"] = match.group(1)
    return found


def substitute(expr: str) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        assert name in SAMPLE_VALUES, f"unknown Grafana variable ${name}"
        return SAMPLE_VALUES[name]

    return _VARIABLE.sub(value, expr)


def test_every_expression_is_parsed_by_promtool(dashboard, tmp_path):
    found = expressions(dashboard)
    assert len(found) >= 10
    rules = [
        {"record": f"dashboard:expression_{i}", "expr": substitute(expr)}
        for i, expr in enumerate(found.values())
    ]
    rule_file = tmp_path / "dashboard.rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run([tool("promtool"), "check", "rules", str(rule_file)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_promtool_check_catches_a_broken_expression(tmp_path):
    """The parse step above is real: an unbalanced expression fails it."""
    rule_file = tmp_path / "broken.rules.yml"
    rule_file.write_text(
        yaml.safe_dump({"groups": [{"name": "x", "rules": [{"record": "x:y", "expr": "sum(rate(up[5m])"}]}]})
    )
    assert run([tool("promtool"), "check", "rules", str(rule_file)]).returncode != 0


def test_expressions_select_series_and_labels_the_app_exposes(dashboard, served_metrics):
    problems = unknown_series_and_labels(list(expressions(dashboard).values()), served_metrics)
    assert not problems, problems


def test_tenant_variable_filters_the_per_tenant_panels(dashboard):
    (tenant,) = [v for v in dashboard["templating"]["list"] if v["name"] == "tenant"]
    assert tenant["multi"] and tenant["includeAll"] and tenant["allValue"] == ".*"
    # Tenants come from the tenant series: the tenants whose signed-in members made requests.
    assert "http_tenant_requests_total{" in tenant["query"]["query"] and tenant["query"]["query"].endswith(
        ", tenant)"
    )
    per_tenant = [p for p in panels(dashboard) if "tenant" in p["title"].lower()]
    assert len(per_tenant) >= 3
    for panel in per_tenant:
        for target in panel["targets"]:
            assert 'tenant=~"$tenant"' in target["expr"], panel["title"]
            assert "tenant" in grouping_labels(target["expr"]), panel["title"]


def test_dashboard_shows_what_operators_need(dashboard):
    def panel_using(metric: str, *, grouped_by: str | None = None, containing: str = "") -> dict:
        for panel in panels(dashboard):
            for target in panel["targets"]:
                names = {name for name, _ in selectors(target["expr"])}
                if metric in names and containing in target["expr"]:
                    if grouped_by is None or grouped_by in grouping_labels(target["expr"]):
                        return panel
        raise AssertionError(f"no panel shows {metric} {grouped_by or ''} {containing}")

    # Per tenant, from the tenant series; per route, from the route series: rate, 5xx ratio, p95 and p99.
    for metric, label, five_xx in (
        ("http_tenant_requests", "tenant", 'status_class="5xx"'),
        ("http_requests", "route", 'status=~"5.."'),
    ):
        panel_using(f"{metric}_total", grouped_by=label, containing="rate(")
        error_ratio = panel_using(f"{metric}_total", grouped_by=label, containing=five_xx)
        assert error_ratio["fieldConfig"]["defaults"]["unit"] == "percentunit"
        duration = metric.replace("requests", "request_duration_seconds") + "_bucket"
        for quantile in ("0.95", "0.99"):
            latency = panel_using(duration, grouped_by=label, containing=f"histogram_quantile({quantile},")
            assert latency["fieldConfig"]["defaults"]["unit"] == "s"
    # No panel asks the route series for a tenant, or the tenant series for a route.
    for panel in panels(dashboard):
        for target in panel["targets"]:
            for name, matchers in selectors(target["expr"]):
                if name.startswith("http_request"):
                    assert "tenant" not in matchers and "tenant" not in grouping_labels(target["expr"]), name
                if name.startswith("http_tenant_request"):
                    assert "route" not in matchers and "route" not in grouping_labels(target["expr"]), name
    breakers = panel_using("circuit_breaker_state", grouped_by="breaker")
    assert breakers["type"] == "state-timeline"
    states = breakers["fieldConfig"]["defaults"]["mappings"][0]["options"]
    assert {v["text"] for v in states.values()} == {"closed", "open", "half-open"}
    panel_using("kube_pod_status_ready", grouped_by="pod")
    panel_using("health_check_status", grouped_by="pod")
    panel_using("database_connections_active", grouped_by="pod")
    panel_using("cache_operations_total", containing='result="hit"')


def test_dashboard_is_well_formed(dashboard):
    assert dashboard["uid"] == "dotmac-platform" and dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
    for panel in panels(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
    (datasource,) = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
    assert datasource["type"] == "datasource" and datasource["query"] == "prometheus"


def test_dashboard_is_installed_as_a_configmap_for_grafanas_sidecar(rendered, overlays_rendered):
    (configmap,) = [o for o in rendered if o["kind"] == "ConfigMap" and DASHBOARD.name in o.get("data", {})]
    metadata = configmap["metadata"]
    # kube-prometheus-stack's sidecar: the label grafana_dashboard "1", in Grafana's own namespace.
    assert metadata["labels"]["grafana_dashboard"] == "1"
    assert metadata["namespace"] == "dotmac-monitoring"
    assert {o["metadata"]["name"] for o in rendered if o["kind"] == "Namespace"} >= {metadata["namespace"]}
    # A fixed name: a hashed one would leave the previous copy behind, a second dashboard of one uid.
    assert metadata["name"] == "dotmac-platform-dashboard"
    assert configmap["data"] == {DASHBOARD.name: DASHBOARD.read_text()}
    assert json.loads(configmap["data"][DASHBOARD.name])["uid"] == "dotmac-platform"
    # kubectl apply keeps the whole object in an annotation, limited to 256 KiB.
    assert len(DASHBOARD.read_bytes()) < 200 * 1024
    # Production installs it; staging shares production's Grafana and leaves it out.
    assert find(overlays_rendered["production"], "ConfigMap", "dotmac-platform-dashboard")
    assert not [o for o in overlays_rendered["staging"] if o["metadata"]["name"] == metadata["name"]]
