"""The Gateway API component does what the Ingresses do: the app over TLS on the same host and
certificate, the same timeouts, the internal paths refused, HTTP redirected, and the network policies
and cert-manager's challenges following the Gateway. Read from production plus the component."""

from __future__ import annotations

import pytest

from .code_facts import ops_route_prefixes
from .conftest import config_map_data, find, load_all

NGINX = "nginx.ingress.kubernetes.io/"


@pytest.fixture(scope="module")
def objects(renders) -> list[dict]:
    return load_all(renders["production+gateway-api"])


@pytest.fixture(scope="module")
def production(overlays_rendered) -> list[dict]:
    return overlays_rendered["production"]


def seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    number = duration.rstrip("hms")
    return float(number) * units[duration[len(number) :]]


def route_rules(route: dict) -> tuple[list[dict], list[dict]]:
    """(rules that forward to a backend, rules that forward nothing)."""
    rules = route["spec"]["rules"]
    return [r for r in rules if r.get("backendRefs")], [r for r in rules if not r.get("backendRefs")]


def test_the_ingresses_are_replaced_by_a_gateway_and_routes(objects):
    assert not [o for o in objects if o["kind"] == "Ingress"]
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "Gateway"] == ["dotmac-platform"]
    routes = {o["metadata"]["name"] for o in objects if o["kind"] == "HTTPRoute"}
    assert routes == {"dotmac-platform", "dotmac-platform-https-redirect"}


def test_https_listener_serves_the_hosts_with_the_certificate_of_cert_manager(objects, production):
    gateway = find(objects, "Gateway", "dotmac-platform")
    listeners = {listener["name"]: listener for listener in gateway["spec"]["listeners"]}
    https = listeners["https"]
    certificate = find(objects, "Certificate", "dotmac-platform-tls")
    assert (https["protocol"], https["port"], https["tls"]["mode"]) == ("HTTPS", 443, "Terminate")
    (reference,) = https["tls"]["certificateRefs"]
    assert (reference.get("group", ""), reference.get("kind", "Secret")) == ("", "Secret")
    assert reference["name"] == certificate["spec"]["secretName"] and "namespace" not in reference
    assert {https["hostname"]} == set(certificate["spec"]["dnsNames"])
    # The same host as the Ingress it replaces, and the one the app accepts.
    ingress = find(production, "Ingress", "dotmac-platform")
    assert {r["host"] for r in ingress["spec"]["rules"]} == {https["hostname"]}
    assert config_map_data(objects)["ALLOWED_HOSTS"] == https["hostname"]
    for listener in listeners.values():
        assert listener["allowedRoutes"]["namespaces"]["from"] == "Same"
        assert listener["hostname"] == https["hostname"]


def test_app_route_forwards_to_the_service_with_the_ingress_timeouts(objects, production):
    route = find(objects, "HTTPRoute", "dotmac-platform")
    gateway = find(objects, "Gateway", "dotmac-platform")
    assert [(p["name"], p["sectionName"]) for p in route["spec"]["parentRefs"]] == [
        (gateway["metadata"]["name"], "https")
    ]
    assert route["spec"]["hostnames"] == [gateway["spec"]["listeners"][0]["hostname"]]
    (forwarding,), _ = route_rules(route)
    assert forwarding["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    (backend,) = forwarding["backendRefs"]
    service = find(objects, "Service", backend["name"])
    assert backend["port"] in {p["port"] for p in service["spec"]["ports"]}
    assert backend.get("kind", "Service") == "Service" and "namespace" not in backend
    # The Ingress' per-read timeouts become the route's; above gunicorn's worker timeout, so the app
    # ends a slow request with its own answer before the proxy gives up on it.
    annotations = find(production, "Ingress", "dotmac-platform")["metadata"]["annotations"]
    ingress_timeout = float(annotations[f"{NGINX}proxy-read-timeout"])
    timeouts = forwarding["timeouts"]
    assert seconds(timeouts["request"]) == seconds(timeouts["backendRequest"]) == ingress_timeout
    assert seconds(timeouts["backendRequest"]) <= seconds(timeouts["request"])
    assert ingress_timeout > float(config_map_data(objects)["GUNICORN_TIMEOUT"])


def test_internal_paths_are_refused_like_the_ingress_refuses_them(objects, production):
    route = find(objects, "HTTPRoute", "dotmac-platform")
    _, refusing = route_rules(route)
    (rule,) = refusing
    # No backend and no filter: the Gateway forwards nothing and answers the request itself.
    assert "filters" not in rule
    denied = [m["path"]["value"] for m in rule["matches"]]
    assert {m["path"]["type"] for m in rule["matches"]} == {"PathPrefix"}
    # Longer than the forwarding rule's prefix: the longest matching prefix wins.
    assert all(len(prefix) > 1 for prefix in denied)
    internal = find(production, "Ingress", "dotmac-platform-internal-paths")
    assert sorted(denied) == sorted(p["path"] for r in internal["spec"]["rules"] for p in r["http"]["paths"])
    for prefix in ops_route_prefixes():
        assert any(prefix.startswith(d) for d in denied), f"{prefix} is reachable through the Gateway"


def test_plain_http_only_redirects_to_https(objects):
    route = find(objects, "HTTPRoute", "dotmac-platform-https-redirect")
    assert [p["sectionName"] for p in route["spec"]["parentRefs"]] == ["http"]
    (rule,) = route["spec"]["rules"]
    assert "backendRefs" not in rule
    redirect = {"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}
    assert rule["filters"] == [redirect]


def test_network_policies_and_http01_challenges_follow_the_gateway(objects):
    policies = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "NetworkPolicy"}
    for name in ("dotmac-platform-from-ingress", "acme-http01-solver-from-ingress"):
        sources = [source for rule in policies[name]["ingress"] for source in rule["from"]]
        namespace = {"matchLabels": {"kubernetes.io/metadata.name": "dotmac-ingress"}}
        assert sources == [{"namespaceSelector": namespace, "podSelector": {}}], name
    issuer = find(objects, "ClusterIssuer", "dotmac-letsencrypt")
    (solver,) = issuer["spec"]["acme"]["solvers"]
    (parent,) = solver["http01"]["gatewayHTTPRoute"]["parentRefs"]
    gateway = find(objects, "Gateway", parent["name"])
    assert parent["namespace"] == gateway["metadata"]["namespace"]
    listener = {item["name"]: item for item in gateway["spec"]["listeners"]}[parent["sectionName"]]
    assert (listener["protocol"], listener["port"]) == ("HTTP", 80), "ACME HTTP-01 is plain HTTP on port 80"
    assert "ingress" not in solver["http01"]
