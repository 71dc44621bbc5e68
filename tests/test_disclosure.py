"""What anonymous callers learn: statuses of the probes only, no tenant's name; and the headers every
page carries (a Content-Security-Policy without inline script)."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest
from django.template import loader
from django.test import Client

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


class InlineCode(HTMLParser):
    """Collects what a Content-Security-Policy without 'unsafe-inline' would block in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _value in attrs}
        if tag == "style" or (tag == "script" and "src" not in names):
            self.found.append(f"<{tag}> without src")
        self.found += [f"{name}= on <{tag}>" for name in names if name == "style" or name.startswith("on")]


def inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    return parser.found


@pytest.fixture
def superuser_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.net", "pw-123456"))
    return client


@pytest.mark.django_db
@pytest.mark.usefixtures("fresh_breakers")
def test_pages_and_the_admin_carry_a_policy_their_markup_keeps(superuser_client):
    """The policy allows no inline script or style, and no page of ours or the admin's has any."""
    pages = ["/", "/accounts/login/", "/admin/login/"]
    admin_pages = ["/admin/", "/admin/ops/circuitbreaker/", "/admin/tenants/tenant/add/", "/admin/auth/user/"]
    for path in pages + admin_pages:
        response = (superuser_client if path in admin_pages else Client()).get(path)
        assert response.status_code == 200, path
        policy = response["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "unsafe" not in policy, policy
        assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy, policy
        assert inline_code(response.content.decode()) == [], path
    unavailable = loader.render_to_string("ops/503.html", {"message": "down"})
    assert inline_code(unavailable) == []


@pytest.mark.django_db
def test_subscriber_pages_keep_the_policy(client, tenant_factory, staff_factory, plan_factory):
    tenant = tenant_factory("acme")
    plan_factory(tenant)
    client.force_login(staff_factory(tenant, "acme-staff"))
    for path in ("/subscribers/", "/subscribers/new/"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "Content-Security-Policy" in response
        assert inline_code(response.content.decode()) == [], path
