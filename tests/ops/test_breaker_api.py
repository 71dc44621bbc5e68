"""The circuit breaker REST API: authentication matrix, resets with audit, bad input → 4xx JSON."""

from __future__ import annotations

import pytest
import redis
from django.contrib.auth.models import Permission
from django.test import Client

from apps.ops import breakers
from apps.ops.breakers.redis_store import NAMES_KEY
from apps.ops.models import BreakerResetAudit
from tests.ops.breaker_support import configure, trip

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_breakers")]

TOKEN = "ops-token-for-tests-0123456789"
STATUS_URL = "/api/v1/circuit-breakers/status"
RESET_ALL_URL = "/api/v1/circuit-breakers/reset-all"


def reset_url(name: str) -> str:
    return f"/api/v1/circuit-breakers/{name}/reset"


@pytest.fixture
def api(settings):
    """Token configured, two breakers configured, ``api-open`` open."""
    settings.OPS_API_TOKEN = TOKEN
    configure(settings, "api-open", fail_max=1)
    configure(settings, "api-closed")
    trip("api-open")
    return settings


@pytest.fixture
def make_user(django_user_model):
    def make(username: str, *, staff: bool, may_reset: bool) -> object:
        user = django_user_model.objects.create_user(username=username, password="pw-123456", is_staff=staff)
        if may_reset:
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label="ops", codename="reset_circuitbreaker")
            )
        return user

    return make


def token_client(token: str = TOKEN) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


def session_client(user, *, enforce_csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=enforce_csrf)
    client.force_login(user)
    return client


def call(client: Client, method: str, url: str, **extra):
    response = getattr(client, method)(url, **extra)
    assert response["Content-Type"] == "application/json", response.content
    return response


ENDPOINTS = [("get", STATUS_URL), ("post", reset_url("api-open")), ("post", RESET_ALL_URL)]


# --- authentication matrix ------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_anonymous_gets_401(api, method, url):
    response = call(Client(), method, url)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json() == {"error": "authentication required"}


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_a_logged_in_non_staff_user_gets_403(api, make_user, method, url):
    client = session_client(make_user("subscriber-user", staff=False, may_reset=True))
    assert call(client, method, url).status_code == 403


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_staff_without_the_reset_permission_gets_403(api, make_user, method, url):
    client = session_client(make_user("plain-staff", staff=True, may_reset=False))
    assert call(client, method, url).status_code == 403
    assert breakers.breaker_status("api-open").state == "open"


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_staff_with_the_reset_permission_is_allowed(api, make_user, method, url):
    client = session_client(make_user("ops-staff", staff=True, may_reset=True))
    assert call(client, method, url).status_code == 200


def test_a_superuser_is_allowed(api, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="pw-123456")
    assert call(session_client(admin), "post", reset_url("api-open")).status_code == 200


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_the_bearer_token_is_allowed(api, method, url):
    assert call(token_client(), method, url).status_code == 200


@pytest.mark.parametrize(
    "header", [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer ", f"Basic {TOKEN}", "Bearer é"]
)
def test_a_wrong_token_gets_401_and_changes_nothing(api, header):
    response = call(Client(HTTP_AUTHORIZATION=header), "post", reset_url("api-open"))
    assert response.status_code == 401
    assert breakers.breaker_status("api-open").state == "open"


def test_no_token_configured_means_no_token_access(api, settings):
    settings.OPS_API_TOKEN = ""
    assert call(Client(HTTP_AUTHORIZATION="Bearer "), "get", STATUS_URL).status_code == 401
    assert call(token_client(""), "get", STATUS_URL).status_code == 401


def test_a_wrong_token_is_refused_even_with_a_valid_session(api, make_user):
    client = session_client(make_user("ops-staff", staff=True, may_reset=True))
    assert call(client, "post", reset_url("api-open"), HTTP_AUTHORIZATION="Bearer nope").status_code == 401


def test_a_session_post_without_csrf_token_gets_403(api, make_user):
    client = session_client(make_user("ops-staff", staff=True, may_reset=True), enforce_csrf=True)
    response = call(client, "post", reset_url("api-open"))
    assert response.status_code == 403
    assert response.json()["error"].startswith("CSRF check failed")
    assert breakers.breaker_status("api-open").state == "open"
    # Reading needs no CSRF token.
    assert call(client, "get", STATUS_URL).status_code == 200


def test_a_session_post_with_the_csrf_token_is_allowed(api, make_user):
    client = session_client(make_user("ops-staff", staff=True, may_reset=True), enforce_csrf=True)
    secret = "A" * 32
    client.cookies["csrftoken"] = secret
    assert call(client, "post", reset_url("api-open"), HTTP_X_CSRFTOKEN=secret).status_code == 200


def test_token_calls_need_no_csrf_token(api):
    client = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert call(client, "post", RESET_ALL_URL).status_code == 200


# --- behaviour ------------------------------------------------------------------------------------


def test_status_lists_every_known_breaker_with_the_documented_fields(api):
    body = call(token_client(), "get", STATUS_URL).json()
    by_name = {entry["name"]: entry for entry in body["breakers"]}
    assert {"api-open", "api-closed"} <= set(by_name)
    opened = by_name["api-open"]
    assert set(opened) >= {
        "name",
        "state",
        "failure_count",
        "fail_max",
        "reset_timeout",
        "success_threshold",
        "opened_at",
        "shared",
    }
    assert (opened["state"], opened["failure_count"], opened["fail_max"], opened["shared"]) == (
        "open",
        1,
        1,
        True,
    )
    assert opened["opened_at"] is not None
    closed = by_name["api-closed"]
    assert (closed["state"], closed["fail_max"], closed["reset_timeout"], closed["success_threshold"]) == (
        "closed",
        5,
        60.0,
        3,
    )
    assert closed["opened_at"] is None


def test_reset_closes_the_breaker_and_is_audited(api, make_user):
    user = make_user("ops-staff", staff=True, may_reset=True)
    response = call(session_client(user), "post", reset_url("api-open"))
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["state"], body["failure_count"]) == ("api-open", "closed", 0)
    assert breakers.breaker_status("api-open").state == "closed"
    audit = BreakerResetAudit.objects.get()
    assert (audit.breaker, audit.actor, audit.user, audit.via) == ("api-open", "ops-staff", user, "api")
    assert (audit.state_before, audit.failure_count_before, audit.shared) == ("open", 1, True)


def test_a_token_reset_is_audited_as_the_token(api):
    call(token_client(), "post", reset_url("api-open"))
    audit = BreakerResetAudit.objects.get()
    assert (audit.actor, audit.user) == ("api-token", None)


def test_reset_all_resets_every_known_breaker(api):
    body = call(token_client(), "post", RESET_ALL_URL).json()
    names = {entry["name"] for entry in body["breakers"]}
    assert body["reset"] == len(body["breakers"]) >= 2
    assert {"api-open", "api-closed"} <= names
    assert {entry["state"] for entry in body["breakers"]} == {"closed"}
    assert set(BreakerResetAudit.objects.values_list("breaker", flat=True)) == names


# --- bad input ------------------------------------------------------------------------------------


def test_an_unknown_name_is_404_and_no_breaker_is_created(api, settings):
    response = call(token_client(), "post", reset_url("no-such-breaker"))
    assert (response.status_code, response.json()) == (404, {"error": "unknown circuit breaker"})
    assert breakers.breaker_status("no-such-breaker") is None
    assert not redis.Redis.from_url(settings.REDIS_URL).sismember(NAMES_KEY, "no-such-breaker")
    assert not BreakerResetAudit.objects.exists()


@pytest.mark.parametrize(
    ("method", "url", "allowed"),
    [
        ("get", reset_url("api-open"), "POST"),
        ("put", reset_url("api-open"), "POST"),
        ("delete", reset_url("api-open"), "POST"),
        ("post", STATUS_URL, "GET, HEAD"),
        ("get", RESET_ALL_URL, "POST"),
    ],
)
def test_a_wrong_method_is_405_in_json(api, method, url, allowed):
    response = call(token_client(), method, url)
    assert response.status_code == 405
    assert response["Allow"] == allowed
    assert breakers.breaker_status("api-open").state == "open"


@pytest.mark.parametrize(
    "path",
    [
        reset_url("a/b"),
        reset_url("%2Fetc%2Fpasswd"),
        reset_url(".."),
        reset_url("%C3%A9t%C3%A9"),
        reset_url("%F0%9F%92%A5"),
        reset_url("%00"),
        reset_url("%FF%FE"),
        reset_url("name%20with%20space"),
        reset_url("UPPER"),
        reset_url("x" * 2000),
        reset_url("api-open%0Aextra"),
        "/api/v1/circuit-breakers/",
        "/api/v1/circuit-breakers/api-open",
        "/api/v1/circuit-breakers/api-open/reset/extra",
        "/api/v1/circuit-breakers/status/more",
    ],
)
def test_odd_paths_get_a_4xx_json_answer_never_a_500(api, path):
    response = call(token_client(), "post", path)
    assert 400 <= response.status_code < 500
    assert "error" in response.json()
    assert breakers.breaker_status("api-open").state == "open"


def test_odd_paths_still_require_authentication(api):
    assert call(Client(), "post", reset_url("a/b")).status_code == 401
    assert call(Client(), "get", "/api/v1/circuit-breakers/whatever").status_code == 401
