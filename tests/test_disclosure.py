"""What anonymous callers learn: statuses of the probes only, no tenant's name; and the headers every
page carries (a Content-Security-Policy without inline script)."""

from __future__ import annotations

import json

import pytest

TOKEN = "ops-token-0123456789abcdef"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/ready", "/health"])
def test_anonymous_probes_answer_statuses_only(client, settings, path):
    settings.APP_VERSION = "2026.11.1-secret-build"
    response = client.get(path)
    document = json.loads(response.content)
    assert set(document) == {"status", "checks"}
    assert "uptime" not in document["checks"]
    for entries in document["checks"].values():
        assert all(set(entry) == {"status"} for entry in entries)
    for leak in ("2026.11.1", settings.DJANGO_ENV, settings.SERVICE_NAME):
        assert leak not in response.content.decode(), leak


@pytest.mark.django_db
def test_a_token_holder_still_gets_the_service_information(client, settings):
    settings.OPS_API_TOKEN = TOKEN
    document = json.loads(client.get("/health", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content)
    assert document["serviceId"] == settings.SERVICE_NAME
    assert "uptime" in document["checks"]


@pytest.fixture
def acme(settings, tenant_factory):
    settings.TENANT_HEADER_ENABLED = True
    return tenant_factory("acme", name="Acme Secret Networks")


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/accounts/login/"])
def test_anonymous_pages_name_no_tenant(client, acme, path):
    response = client.get(path, HTTP_X_TENANT_ID="acme")
    assert response.status_code == 200
    assert acme.name not in response.content.decode()


@pytest.mark.django_db
def test_staff_see_the_name_of_their_own_tenant_only(client, acme, tenant_factory, staff_factory):
    other = tenant_factory("globex", name="Globex Fibre")
    client.force_login(staff_factory(other, "globex-staff"))
    assert acme.name not in client.get("/", HTTP_X_TENANT_ID="acme").content.decode()
    assert other.name in client.get("/").content.decode()
