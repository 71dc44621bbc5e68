"""Metrics in one process: /metrics access, exposition validity, deltas around real actions, labels."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import override_settings
from django.urls import reverse
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

import apps.ops.breakers
from apps.ops.breakers import get_breaker, reset_breaker
from apps.ops.metrics import record_provisioning
from apps.ops.metrics.definitions import REQUEST_DURATION_BUCKETS
from apps.ops.metrics.labels import TenantLabels, tenant_labels
from tests.ops.breaker_support import clear_local_breakers

TOKEN = "scrape-secret-0123456789"


def value(name: str, **labels: str) -> float:
    """Current value of one sample in this process (0 when the series does not exist yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture(autouse=True)
def _fresh_tenant_labels():
    tenant_labels.reset()
    yield
    tenant_labels.reset()


@pytest.fixture
def acme_staff(tenant_factory, staff_factory, plan_factory):
    acme = tenant_factory("acme")
    return acme, staff_factory(acme, "alice"), plan_factory(acme)


# --- access --------------------------------------------------------------------------------------


@override_settings(METRICS_BEARER_TOKEN=TOKEN)
def test_metrics_needs_the_bearer_token(client):
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    assert wrong.status_code == 401
    assert wrong["WWW-Authenticate"].startswith("Bearer")
    right = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert right.status_code == 200
    assert b"http_requests_total" in right.content


@override_settings(METRICS_BEARER_TOKEN=TOKEN)
def test_metrics_refuses_other_schemes_and_methods(client):
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


@override_settings(METRICS_BEARER_TOKEN="", IS_PRODUCTION=True, METRICS_PUBLIC=False)
def test_metrics_closed_in_production_without_a_token(client):
    assert client.get("/metrics").status_code == 401


@override_settings(METRICS_BEARER_TOKEN="", IS_PRODUCTION=True, METRICS_PUBLIC=True)
def test_metrics_public_in_production_when_declared(client):
    assert client.get("/metrics").status_code == 200


@override_settings(METRICS_BEARER_TOKEN="", ALLOWED_HOSTS=["app.example"])
def test_metrics_answers_scrapes_addressed_to_the_pod_ip(client):
    # Prometheus scrapes the pod IP, which is not an allowed host.
    assert client.get("/metrics", HTTP_HOST="10.1.2.3:8000").status_code == 200
    assert client.get("/", HTTP_HOST="10.1.2.3:8000").status_code == 400


# --- exposition ----------------------------------------------------------------------------------


@pytest.mark.django_db
@override_settings(METRICS_BEARER_TOKEN="")
def test_exposition_passes_promtool(client, acme_staff):
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: `make system-deps` installs the Debian package prometheus"
    _, alice, _ = acme_staff
    client.force_login(alice)
    client.get(reverse("subscribers:list"))
    cache.get("promtool-miss")
    record_provisioning("success")
    body = client.get("/metrics").content
    for name in ("http_requests_total", "http_request_duration_seconds_bucket", "cache_operations_total"):
        assert name.encode() in body
    assert b'le="1.0"' in body
    check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()


def test_duration_histogram_has_a_one_second_bucket_and_few_buckets():
    assert 1.0 in REQUEST_DURATION_BUCKETS
    assert 8 <= len(REQUEST_DURATION_BUCKETS) + 1 <= 10


# --- deltas around real actions ------------------------------------------------------------------


@pytest.mark.django_db
def test_creating_a_subscriber_counts_for_its_tenant(client, acme_staff):
    _, alice, plan = acme_staff
    client.force_login(alice)
    before = value("dotmac_subscribers_created_total", tenant="acme")
    response = client.post(
        reverse("subscribers:create"), {"name": "New", "email": "new@acme.test", "plan": plan.pk}
    )
    assert response.status_code == 302
    assert value("dotmac_subscribers_created_total", tenant="acme") == before + 1
    # An invalid form creates nothing and counts nothing.
    client.post(reverse("subscribers:create"), {"name": "", "email": "bad", "plan": plan.pk})
    assert value("dotmac_subscribers_created_total", tenant="acme") == before + 1


@pytest.mark.django_db
def test_a_members_request_is_counted_per_route_and_per_tenant(client, acme_staff):
    _, alice, _ = acme_staff
    client.force_login(alice)
    route = {"method": "GET", "route": "subscribers:list"}
    tenant = {"tenant": "acme"}
    samples = {
        "http_requests_total": {**route, "status": "200"},
        "http_request_duration_seconds_count": route,
        "http_tenant_requests_total": {**tenant, "status_class": "2xx"},
        "http_tenant_request_duration_seconds_count": tenant,
    }
    before = {name: value(name, **labels) for name, labels in samples.items()}
    assert client.get(reverse("subscribers:list")).status_code == 200
    assert {name: value(name, **labels) for name, labels in samples.items()} == {
        name: count + 1 for name, count in before.items()
    }


def tenant_requests_counted(tenant: str) -> float:
    return value("http_tenant_request_duration_seconds_count", tenant=tenant)


@pytest.mark.django_db
@override_settings(TENANT_HEADER_ENABLED=True, TENANT_BASE_DOMAIN="isp.test", ALLOWED_HOSTS=[".isp.test"])
def test_a_tenant_is_labelled_only_for_its_own_members(client, acme_staff, tenant_factory, staff_factory):
    """Named by a header or a host, by an anonymous client or staff of another tenant: no label."""
    globex = tenant_factory("globex")
    bob = staff_factory(globex, "bob")
    before = tenant_requests_counted("acme"), tenant_requests_counted("globex")
    client.get("/subscribers/", HTTP_HOST="isp.test", HTTP_X_TENANT_ID="acme")
    client.get("/subscribers/", HTTP_HOST="acme.isp.test")
    client.force_login(bob)
    assert client.get("/subscribers/", HTTP_HOST="acme.isp.test").status_code == 403
    assert client.get("/subscribers/", HTTP_HOST="isp.test", HTTP_X_TENANT_ID="acme").status_code == 403
    assert (tenant_requests_counted("acme"), tenant_requests_counted("globex")) == before
    assert client.get("/subscribers/", HTTP_HOST="globex.isp.test").status_code == 200
    assert tenant_requests_counted("globex") == before[1] + 1


def test_cache_miss_then_hit(db):
    miss = {"operation": "get", "result": "miss"}
    hit = {"operation": "get", "result": "hit"}
    stored = {"operation": "set", "result": "ok"}
    before = {
        k: value("cache_operations_total", **v) for k, v in (("miss", miss), ("hit", hit), ("set", stored))
    }
    assert cache.get("metrics-delta-key") is None
    cache.set("metrics-delta-key", 0, 30)
    assert cache.get("metrics-delta-key") == 0  # a falsy cached value is a hit, and is returned
    assert value("cache_operations_total", **miss) == before["miss"] + 1
    assert value("cache_operations_total", **stored) == before["set"] + 1
    assert value("cache_operations_total", **hit) == before["hit"] + 1


def test_an_unreachable_redis_is_counted_as_an_error_once_then_as_bypassed(redis_server):
    error = {"operation": "get", "result": "error"}
    bypassed = {"operation": "get", "result": "bypassed"}
    before = {
        name: value("cache_operations_total", **labels)
        for name, labels in (("error", error), ("bypassed", bypassed))
    }
    redis_server.stop()
    try:
        assert cache.get("metrics-error-key", "fallback") == "fallback"  # pages go on without the cache
        assert cache.get("metrics-error-key", "fallback") == "fallback"
    finally:
        redis_server.restart()
    assert value("cache_operations_total", **error) == before["error"] + 1
    assert value("cache_operations_total", **bypassed) == before["bypassed"] + 1


ANONYMOUS = {"method": "any", "route": "anonymous"}


@pytest.mark.django_db
@override_settings(ROOT_URLCONF="tests.ops.metrics_urls", DEBUG=False)
def test_a_failing_view_is_counted_as_500(client, acme_staff):
    client.raise_request_exception = False
    own = {"method": "GET", "route": "explode"}
    before = (
        value("http_requests_total", **ANONYMOUS, status="500"),
        value("http_requests_total", **own, status="500"),
        value("http_request_duration_seconds_count", **own),
    )
    assert client.get("/explode").status_code == 500  # not logged in: the anonymous route
    client.force_login(acme_staff[1])
    assert client.get("/explode").status_code == 500
    assert (
        value("http_requests_total", **ANONYMOUS, status="500"),
        value("http_requests_total", **own, status="500"),
        value("http_request_duration_seconds_count", **own),
    ) == (before[0] + 1, before[1] + 1, before[2] + 1)


@pytest.mark.django_db(transaction=True)
def test_database_connections_active_follows_checkout_and_return():
    connection.close()
    before = value("database_connections_active", alias="default")
    connection.ensure_connection()
    assert value("database_connections_active", alias="default") == before + 1
    connection.close()
    assert value("database_connections_active", alias="default") == before


# --- bounded labels ------------------------------------------------------------------------------


@pytest.mark.django_db
@override_settings(ROOT_URLCONF="tests.ops.metrics_urls")
def test_unknown_methods_and_unmatched_paths_get_fixed_labels(client, acme_staff):
    _, alice, _ = acme_staff
    client.force_login(alice)
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    odd = {"method": "other", "route": "ok", "status": "200"}
    before = value("http_requests_total", **unmatched), value("http_requests_total", **odd)
    client.get("/no/such/path/42")
    client.generic("BREW", "/ok")
    assert value("http_requests_total", **unmatched) == before[0] + 1
    assert value("http_requests_total", **odd) == before[1] + 1


@override_settings(ROOT_URLCONF="tests.ops.metrics_urls")
def test_requests_of_clients_not_logged_in_are_one_route_with_their_status(client):
    counted = [
        ("200", lambda: client.get("/ok")),
        ("200", lambda: client.post("/ok")),
        ("200", lambda: client.generic("BREW", "/ok")),
        ("200", lambda: client.head("/ok")),
        ("404", lambda: client.get("/no/such/path/42")),
        ("401", lambda: client.get("/api/v1/circuit-breakers/status")),
    ]
    for status, send in counted:
        before = (
            value("http_requests_total", **ANONYMOUS, status=status),
            value("http_request_duration_seconds_count", **ANONYMOUS),
        )
        send()
        assert value("http_requests_total", **ANONYMOUS, status=status) == before[0] + 1, status
        assert value("http_request_duration_seconds_count", **ANONYMOUS) == before[1] + 1, status


@pytest.mark.django_db
def test_a_login_counts_on_its_route_and_a_logout_as_anonymous(client, acme_staff):
    """Who the request's user is, is read after the response: login() and logout() change it."""
    logged_in = {"method": "POST", "route": "login", "status": "302"}
    logged_out = {**ANONYMOUS, "status": "302"}
    before = value("http_requests_total", **logged_in), value("http_requests_total", **logged_out)
    answer = client.post(reverse("login"), {"username": "alice", "password": "pw-123456"})
    assert answer.status_code == 302
    assert value("http_requests_total", **logged_in) == before[0] + 1
    # The member's own request: counted for the tenant. Logging out: not any more.
    tenant_before = value("http_tenant_requests_total", tenant="acme", status_class="3xx")
    assert client.post(reverse("logout")).status_code == 302
    assert value("http_requests_total", **logged_out) == before[1] + 1
    assert value("http_tenant_requests_total", tenant="acme", status_class="3xx") == tenant_before


def requests_counted() -> float:
    return sum(
        sample.value
        for family in REGISTRY.collect()
        if family.name == "http_requests"
        for sample in family.samples
        if sample.name == "http_requests_total"
    )


@pytest.mark.django_db
@override_settings(TENANT_HEADER_ENABLED=True)
def test_probes_are_not_counted_whatever_tenant_they_name(client, tenant_factory):
    tenant_factory("acme")
    before = requests_counted()
    for path in ("/live", "/live/", "/ready", "/ready/", "/health", "/health/"):
        client.get(path, HTTP_X_TENANT_ID="acme")
    assert requests_counted() == before


@override_settings(METRICS_TENANT_LABEL_LIMIT=2, PROMETHEUS_MULTIPROC_DIR="")
def test_tenants_beyond_the_limit_are_other():
    labels = [tenant_labels.label(s) for s in ("a", "b", "c", "a", None)]
    assert labels == ["a", "b", "other", "a", "none"]


@override_settings(PROMETHEUS_MULTIPROC_DIR="", METRICS_TENANT_LABEL_LIMIT=5)
def test_unknown_provisioning_outcomes_are_other():
    before = value("dotmac_provisioning_requests_total", tenant="none", outcome="other")
    record_provisioning("some-typo")
    assert value("dotmac_provisioning_requests_total", tenant="none", outcome="other") == before + 1


def test_workers_admit_the_same_tenants(tmp_path):
    """Two label mappers (as in two workers) sharing a directory agree on the first N tenants."""
    with override_settings(METRICS_TENANT_LABEL_LIMIT=2, PROMETHEUS_MULTIPROC_DIR=str(tmp_path)):
        worker_a, worker_b = TenantLabels(), TenantLabels()
        assert worker_a.label("acme") == "acme"
        assert worker_b.label("globex") == "globex"
        assert worker_b.label("initech") == "other"
        assert worker_a.label("initech") == "other"
        assert worker_b.label("acme") == "acme"
        assert worker_a.label("globex") == "globex"


@override_settings(METRICS_BEARER_TOKEN="")
def test_a_failing_breaker_registry_does_not_fail_the_scrape(client, monkeypatch, caplog):
    def broken():
        raise RuntimeError("registry unavailable")

    # Where the collector looks the function up, so that the failure path runs.
    monkeypatch.setattr(apps.ops.breakers.collector, "all_statuses", broken)
    with caplog.at_level("WARNING", logger="apps.ops.breakers"):
        response = client.get("/metrics")
    assert response.status_code == 200
    assert b"# TYPE circuit_breaker_state gauge" in response.content
    assert "circuit breaker states unavailable for this scrape" in caplog.text


@pytest.mark.django_db
@override_settings(METRICS_BEARER_TOKEN="")
def test_breaker_state_is_read_at_scrape_time(client):
    def state_of(name: str) -> float | None:
        body = client.get("/metrics").content.decode()
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                if sample.name == "circuit_breaker_state" and sample.labels == {"breaker": name}:
                    return sample.value
        return None

    def failing_upstream():
        raise ConnectionError("upstream down")

    name = "metrics-scrape-test"
    breaker = get_breaker(name)
    try:
        assert state_of(name) == 0
        for _ in range(breaker.fail_max):
            with pytest.raises(ConnectionError):
                breaker.call(failing_upstream)
        assert state_of(name) == 1
        reset_breaker(name, reason="test")
        assert state_of(name) == 0
    finally:
        reset_breaker(name, reason="test cleanup")
        clear_local_breakers()


def test_a_command_with_an_unusable_multiprocess_dir_still_runs(tmp_path):
    """The migrate Job shares the pods' ConfigMap (PROMETHEUS_MULTIPROC_DIR) but not their volume."""
    project = Path(__file__).resolve().parent.parent.parent
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_", "REDIS_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="dotmac.settings",
        DATA_DIR=str(tmp_path),
        # Cannot be created: its parent is a file (as a path on a read-only filesystem cannot).
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "a-file" / "prometheus"),
        PYTHONPATH=str(project),
    )
    (tmp_path / "a-file").write_text("")
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "metrics stay in memory" in result.stdout + result.stderr
