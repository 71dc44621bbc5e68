"""Tenant resolution: subdomain, header, membership; only known active tenants; cached."""

import pytest
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from apps.tenants.context import current_tenant, current_tenant_slug
from apps.tenants.middleware import TenantMiddleware
from apps.tenants.resolution import resolve_tenant, subdomain_slug

pytestmark = pytest.mark.django_db


@pytest.fixture
def rf():
    return RequestFactory()


def _anonymous(request):
    from django.contrib.auth.models import AnonymousUser

    request.user = AnonymousUser()
    return request


def test_subdomain_of_base_domain_resolves_active_tenant(settings, rf, tenant_factory):
    settings.TENANT_BASE_DOMAIN = "isp.example.com"
    settings.ALLOWED_HOSTS = [".isp.example.com"]
    acme = tenant_factory("acme")
    request = _anonymous(rf.get("/", HTTP_HOST="acme.isp.example.com"))
    assert resolve_tenant(request) == acme


def test_unknown_or_inactive_subdomain_is_no_tenant(settings, rf, tenant_factory):
    settings.TENANT_BASE_DOMAIN = "isp.example.com"
    settings.ALLOWED_HOSTS = [".isp.example.com"]
    tenant_factory("sleepy", active=False)
    for host in ["sleepy.isp.example.com", "nobody.isp.example.com", "a.b.isp.example.com"]:
        assert resolve_tenant(_anonymous(rf.get("/", HTTP_HOST=host))) is None


def test_disallowed_host_gives_no_tenant_instead_of_an_error(settings, rf, tenant_factory):
    settings.TENANT_BASE_DOMAIN = "isp.example.com"
    settings.ALLOWED_HOSTS = ["isp.example.com"]
    tenant_factory("acme")
    assert resolve_tenant(_anonymous(rf.get("/", HTTP_HOST="acme.isp.example.com"))) is None


def test_header_is_ignored_unless_enabled(settings, rf, tenant_factory):
    acme = tenant_factory("acme")
    settings.TENANT_HEADER_ENABLED = False
    assert resolve_tenant(_anonymous(rf.get("/", HTTP_X_TENANT_ID="acme"))) is None
    settings.TENANT_HEADER_ENABLED = True
    assert resolve_tenant(_anonymous(rf.get("/", HTTP_X_TENANT_ID="acme"))) == acme


def test_header_with_unknown_or_hostile_value_is_no_tenant(settings, rf, tenant_factory):
    settings.TENANT_HEADER_ENABLED = True
    tenant_factory("acme")
    for value in ["nope", "acme' OR 1=1 --", "x" * 5000, "ACME\x00", "../acme"]:
        assert resolve_tenant(_anonymous(rf.get("/", HTTP_X_TENANT_ID=value))) is None


def test_membership_resolves_for_logged_in_user(rf, tenant_factory, staff_factory):
    acme = tenant_factory("acme")
    user = staff_factory(acme, "alice")
    request = rf.get("/")
    request.user = user
    assert resolve_tenant(request) == acme


def test_resolution_is_cached_and_costs_no_query_on_the_hot_path(settings, rf, tenant_factory):
    settings.TENANT_HEADER_ENABLED = True
    tenant_factory("acme")
    resolve_tenant(_anonymous(rf.get("/", HTTP_X_TENANT_ID="acme")))
    resolve_tenant(_anonymous(rf.get("/", HTTP_X_TENANT_ID="ghost")))
    with CaptureQueriesContext(connection) as queries:
        for _ in range(20):
            assert resolve_tenant(_anonymous(rf.get("/", HTTP_X_TENANT_ID="acme"))).slug == "acme"
            assert resolve_tenant(_anonymous(rf.get("/", HTTP_X_TENANT_ID="ghost"))) is None
    assert len(queries) == 0


def test_deactivating_a_tenant_takes_effect_at_once_in_this_process(settings, rf, tenant_factory):
    settings.TENANT_HEADER_ENABLED = True
    acme = tenant_factory("acme")
    assert resolve_tenant(_anonymous(rf.get("/", HTTP_X_TENANT_ID="acme"))) == acme
    acme.active = False
    acme.save()
    assert resolve_tenant(_anonymous(rf.get("/", HTTP_X_TENANT_ID="acme"))) is None


def test_middleware_sets_request_tenant_and_context_var_only_during_the_request(settings, rf, tenant_factory):
    settings.TENANT_HEADER_ENABLED = True
    tenant_factory("acme")
    seen = {}

    def view(request):
        seen["request"] = request.tenant.slug
        seen["context"] = current_tenant_slug()
        from django.http import HttpResponse

        return HttpResponse("ok")

    TenantMiddleware(view)(_anonymous(rf.get("/", HTTP_X_TENANT_ID="acme")))
    assert seen == {"request": "acme", "context": "acme"}
    assert current_tenant.get() is None


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("acme.isp.example.com", "acme"),
        ("ACME.isp.example.com:8443", "acme"),
        ("isp.example.com", None),
        ("evil.com", None),
        ("acme.isp.example.com.evil.com", None),
        ("x.acme.isp.example.com", None),
    ],
)
def test_subdomain_slug_parsing(host, expected):
    assert subdomain_slug(host, "isp.example.com") == expected
