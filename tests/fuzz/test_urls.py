"""Every URL pattern of the resolver (the admin's and the ops API's too), driven with every method and
generated path parameters, query strings, bodies and headers, as anonymous, staff of another tenant,
staff of the tenant and a superuser, on PostgreSQL: never a 5xx, and a refused request (4xx) changes
no row of the business tables.

Reproducible and bounded: Hypothesis runs with a fixed seed and a fixed number of examples per
pattern, no deadline and no example database, so CI tries the same cases on every run; the session's
summary prints how many (tests/fuzz/conftest.py). Most generated requests are plausible with a few
hostile parts, so that they get past the login and tenant checks to the views.
"""

from __future__ import annotations

import json
import re
import zlib
from http.cookies import SimpleCookie
from urllib.parse import quote

import pytest
from django.apps import apps
from django.db import transaction
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.converters import IntConverter, PathConverter, SlugConverter, StringConverter, UUIDConverter
from django.urls.resolvers import RoutePattern
from hypothesis import HealthCheck, given, seed
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from apps.subscribers.models import Subscriber
from apps.tenants.resolution import reset_cache
from tests.fuzz.conftest import CASES

# About 35 s in all (the budget for it: 45 s): `make test` runs it, `make test-fast` leaves it out.
pytestmark = [pytest.mark.django_db, pytest.mark.slow]

# The project's own pages and API get most of the budget; Django's admin views are Django's.
EXAMPLES_PER_PATTERN = 22
EXAMPLES_PER_ADMIN_PATTERN = 3
EXAMPLES_PER_ADMIN_CHANGELIST = 16
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
PERSONAS = ("anonymous", "staff_of_acme", "staff_of_beta", "superuser")
# Every model of these apps is a business table: subscribers, plans, tenants, memberships, breaker
# configuration and audit.
BUSINESS_APPS = ("tenants", "subscribers", "ops")
BASE_DOMAIN = "dotmac.test"


def url_patterns(resolver: URLResolver | None = None, prefix: tuple = ()) -> list[tuple]:
    """Each pattern the resolver can reach, as the chain of patterns from the root to it."""
    resolver = resolver or get_resolver()
    found = []
    for entry in resolver.url_patterns:
        chain = (*prefix, entry.pattern)
        if isinstance(entry, URLResolver):
            found.extend(url_patterns(entry, chain))
        elif isinstance(entry, URLPattern):
            found.append(chain)
    return found


def pattern_id(chain: tuple) -> str:
    return "".join(str(pattern) for pattern in chain) or "<root>"


PATTERNS = url_patterns()

# Percent-escapes no browser sends for text: bytes that are not UTF-8, a NUL, a slash, a lone '%'.
ESCAPE_JUNK = st.sampled_from(
    ["%FF", "%C3%28", "%E2%80", "%00", "%2F", "%25", "%", "%zz", "%C0%AF", "%E2%80%A8"]
)
PLAUSIBLE = st.sampled_from(
    (
        "acme beta S_acme s@acme.test s@beta.test active pending suspended 1 2 29.00 on true -1 0 1e9 "
        "tenant name -pk 2026-01-01 yes delete_selected"
    ).split()
)
HOSTILE = st.sampled_from(
    ["\0", "a\0b", "\r\n", "\n", "\u2028", "\u0085", "'", '"', "<script>", "../..", "%s", "{}"]
)
HUGE = st.sampled_from([5_000, 5_000, 3_000_000]).map(lambda size: "9" * size)
TEXT = st.one_of(PLAUSIBLE, PLAUSIBLE, PLAUSIBLE, PLAUSIBLE, st.text(max_size=20), HOSTILE, HUGE)
# Header values arrive through a WSGI server as latin-1 text without line breaks or NUL.
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF) | st.just("\t"), max_size=40)
FIELD_NAMES = st.sampled_from(
    (
        "q page name email phone plan status tenant user slug active username password next o p e all "
        "_changelist_filters _popup _to_field action _selected_action select_across index post term "
        "app_label model_name field_name csrfmiddlewaretoken _save _continue _addanother monthly_price "
        "download_mbps upload_mbps status__exact tenant__id__exact failure_threshold "
        "reset_timeout_seconds reason"
    ).split()
) | st.text(max_size=10)


def encoded(text: str) -> str:
    return quote(text, safe="")


def percent_encoded(text_strategy) -> st.SearchStrategy[str]:
    as_text = text_strategy.map(encoded)
    return st.one_of(as_text, as_text, as_text, ESCAPE_JUNK)


def query_string(values) -> st.SearchStrategy[str]:
    pair = st.tuples(percent_encoded(FIELD_NAMES), percent_encoded(values)).map("=".join)
    return st.lists(pair | ESCAPE_JUNK, max_size=4).map("&".join)


def converter_value(converter, known_ids: list[int]) -> st.SearchStrategy[str]:
    ids = st.sampled_from(known_ids)
    if isinstance(converter, IntConverter):
        return st.one_of(ids, ids, st.integers(0, 10**30)).map(str)
    if isinstance(converter, UUIDConverter):
        return st.uuids().map(str)
    if isinstance(converter, SlugConverter):
        return st.from_regex(converter.regex, fullmatch=True)
    words = percent_encoded(TEXT).filter(bool)
    if isinstance(converter, PathConverter):
        return st.one_of(ids.map(str), st.lists(words, min_size=1, max_size=3).map("/".join))
    if isinstance(converter, StringConverter):
        return st.one_of(ids.map(str), words)
    return st.from_regex(converter.regex, fullmatch=True).map(encoded)


ROUTE_PARAMETER = re.compile(r"<(?:[^>:]+:)?([^>]+)>")


def segment(pattern, known_ids: list[int]) -> st.SearchStrategy[str]:
    """A path fragment the pattern matches, its parameters generated."""
    if isinstance(pattern, RoutePattern):
        parts = ROUTE_PARAMETER.split(str(pattern))  # literal, name, literal, name, ..., literal
        strategies = [
            st.just(part) if index % 2 == 0 else converter_value(pattern.converters[part], known_ids)
            for index, part in enumerate(parts)
        ]
        return st.tuples(*strategies).map("".join)
    # A regular expression (the admin's app index and catch-all, the ops API's catch-all).
    return st.from_regex(str(pattern), fullmatch=True).map(lambda text: quote(text, safe="/"))


def admin_action(known_ids: list[int]) -> st.SearchStrategy[tuple[str, str, tuple[bytes, str]]]:
    """(method, query, body): an admin list's action form, run on a selection of rows."""
    form = st.fixed_dictionaries(
        {
            "action": st.sampled_from(["delete_selected", "delete_selected", "", "no_such_action"]),
            "_selected_action": st.lists(st.sampled_from(known_ids).map(str) | TEXT, min_size=1, max_size=3),
        },
        optional={"index": st.sampled_from(["0", "1"]) | TEXT, "post": st.just("yes"), "select_across": TEXT},
    )
    return form.map(lambda data: ("POST", "", (encode_multipart(BOUNDARY, data), MULTIPART_CONTENT)))


def body() -> st.SearchStrategy[tuple[bytes, str]]:
    """(bytes, content type): none, urlencoded, multipart, JSON, or bytes under any content type."""
    fields = st.dictionaries(FIELD_NAMES, TEXT | st.lists(TEXT, max_size=3), max_size=6)
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
        lambda children: st.lists(children, max_size=3) | st.dictionaries(FIELD_NAMES, children, max_size=3),
        max_leaves=8,
    )
    content_types = st.sampled_from(
        ["text/plain", "application/json", MULTIPART_CONTENT, "multipart/form-data", "x/y; charset=nope"]
    )
    return st.one_of(
        st.just((b"", "")),
        query_string(TEXT).map(lambda text: (text.encode(), "application/x-www-form-urlencoded")),
        fields.map(lambda data: (encode_multipart(BOUNDARY, data), MULTIPART_CONTENT)),
        json_values.map(lambda value: (json.dumps(value).encode(), "application/json")),
        st.tuples(st.binary(max_size=64), content_types),
    )


HOSTS = st.sampled_from(
    [
        *["testserver", f"acme.{BASE_DOMAIN}", f"beta.{BASE_DOMAIN}", f"gone.{BASE_DOMAIN}", "[::1]:8000"],
        *[f"{BASE_DOMAIN}:99999", "evil.example", f"a..{BASE_DOMAIN}", ""],
    ]
)
HEADERS = {
    "HTTP_HOST": HOSTS | HEADER_TEXT,
    "HTTP_X_TENANT_ID": st.sampled_from(["acme", "beta", "gone", "ACME", " acme ", "acme.beta"])
    | HEADER_TEXT,
    "HTTP_X_FORWARDED_FOR": st.sampled_from(["203.0.113.9", "203.0.113.9, 10.0.0.1", "::1"]) | HEADER_TEXT,
    "HTTP_X_FORWARDED_PROTO": st.sampled_from(["https", "http"]) | HEADER_TEXT,
    "HTTP_X_FORWARDED_HOST": HOSTS | HEADER_TEXT,
    "HTTP_X_FORWARDED_PORT": st.sampled_from(["443", "-1", "99999"]) | HEADER_TEXT,
    "HTTP_X_REQUEST_ID": HEADER_TEXT,
    "HTTP_AUTHORIZATION": st.sampled_from(["Bearer ", "Bearer x", "Basic eA==", "bearer  y"]) | HEADER_TEXT,
    "HTTP_ACCEPT": st.sampled_from(["application/json", "text/html", "*/*"]) | HEADER_TEXT,
    "HTTP_REFERER": HEADER_TEXT,
    "HTTP_ORIGIN": HEADER_TEXT,
}
EXTRA_COOKIES = st.sampled_from(["sessionid=forged", "csrftoken=x", "messages=garbage", 'x="\\"', "=;="])


def headers() -> st.SearchStrategy[dict[str, str]]:
    """A few of the headers above."""
    return st.lists(st.sampled_from(sorted(HEADERS)), unique=True, max_size=3).flatmap(
        lambda names: st.fixed_dictionaries({name: HEADERS[name] for name in names})
    )


def business_rows() -> dict[str, list[tuple]]:
    return {
        model._meta.label: list(model._default_manager.order_by("pk").values_list())
        for label in BUSINESS_APPS
        for model in apps.get_app_config(label).get_models()
        if not model._meta.proxy
    }


@pytest.fixture
def world(settings, tenant_factory, staff_factory, plan_factory, django_user_model):
    """Tenants acme and beta with staff, a plan and a subscriber each, an inactive tenant, a superuser;
    tenants resolve from the Host's subdomain and X-Tenant-ID too. Returns the personas' session
    cookies and every primary key a path parameter may name."""
    settings.ALLOWED_HOSTS = ["testserver", "localhost", "[::1]", f".{BASE_DOMAIN}"]
    settings.TENANT_HEADER_ENABLED = True
    settings.TENANT_BASE_DOMAIN = BASE_DOMAIN
    users = {}
    ids = set()
    for slug in ("acme", "beta"):
        tenant = tenant_factory(slug)
        plan = plan_factory(tenant)
        staff = staff_factory(tenant, f"staff-{slug}")
        subscriber = Subscriber.objects.create(
            tenant=tenant, plan=plan, name=f"S {slug}", email=f"s@{slug}.test"
        )
        ids |= {tenant.pk, plan.pk, staff.pk, subscriber.pk, staff.membership.pk}
        users[f"staff_of_{slug}"] = staff
    tenant_factory("gone", active=False)
    users["superuser"] = django_user_model.objects.create_superuser(username="root", password="pw-123456")
    cookies = {"anonymous": ""}
    for persona, user in users.items():
        client = Client()
        client.force_login(user)
        cookies[persona] = client.cookies.output(attrs=[], header="", sep=";").strip()
    return cookies, sorted(ids)


def examples_for(chain: tuple) -> int:
    if str(chain[0]) != "admin/":
        return EXAMPLES_PER_PATTERN
    return EXAMPLES_PER_ADMIN_CHANGELIST if is_admin_changelist(chain) else EXAMPLES_PER_ADMIN_PATTERN


def is_admin_changelist(chain: tuple) -> bool:
    """admin/<app>/<model>/: filters, searches and actions."""
    return str(chain[0]) == "admin/" and len(chain) == 3 and str(chain[-1]) == ""


@pytest.mark.parametrize("chain", PATTERNS, ids=[pattern_id(chain) for chain in PATTERNS])
def test_no_url_answers_5xx_and_no_refused_request_changes_a_row(world, chain):
    cookies, known_ids = world
    path = st.tuples(*(segment(pattern, known_ids) for pattern in chain)).map(
        lambda parts: "/" + "".join(parts)
    )

    shape = st.tuples(st.sampled_from(METHODS) | st.sampled_from(["GET", "POST"]), query_string(TEXT), body())
    if is_admin_changelist(chain):
        shape = shape | admin_action(known_ids)

    # A seed of each pattern's own (a stable one: str's hash is not), so that patterns do not all
    # get the same sequence of choices as derandomize would give them.
    @seed(zlib.crc32(pattern_id(chain).encode()))
    @hypothesis_settings(
        max_examples=examples_for(chain),
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        shape=shape,
        path=path,
        extra_headers=headers(),
        extra_cookies=st.lists(EXTRA_COOKIES | HEADER_TEXT, max_size=2),
    )
    def request_is_answered(shape, path, extra_headers, extra_cookies):
        method, query, (data, content_type) = shape
        url = f"{path}?{query}" if query else path
        for persona in PERSONAS:  # the same request as each
            cookie = "; ".join(filter(None, [cookies[persona], *extra_cookies]))
            reset_cache()
            before = business_rows()
            with transaction.atomic():  # each request starts from the same rows
                client = Client(raise_request_exception=False)
                client.cookies = SimpleCookie()  # the persona's session comes in HTTP_COOKIE
                response = client.generic(
                    method, url, data=data, content_type=content_type, HTTP_COOKIE=cookie, **extra_headers
                )
                status = response.status_code
                CASES[f"{status // 100}xx"] += 1
                case = (
                    f"{persona} {method} {url[:300]!r} {extra_headers} cookie {cookie!r} body {data[:300]!r}"
                )
                assert status < 500, f"{case}: {status}, {getattr(response, 'exc_info', None)}"
                if status >= 400:
                    assert business_rows() == before, f"{case}: {status}, yet rows changed"
                transaction.set_rollback(True)

    request_is_answered()
