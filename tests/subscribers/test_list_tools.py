"""The list's tools: total, filters with counts, sort, search, pagination, CSV export, bulk actions,
the plans page; a constant number of queries whatever the number of subscribers; tenant isolation."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.subscribers.models import ActivityEntry, Subscriber
from apps.subscribers.views import EXPORT_COLUMNS
from tests.ops.breaker_support import configure, fresh_breakers  # noqa: F401
from tests.upstream import upstream_fixture  # noqa: F401

pytestmark = pytest.mark.django_db

LIST = reverse("subscribers:list")


@pytest.fixture
def shop(tenant_factory, staff_factory, plan_factory):
    """acme with two plans and five subscribers of every status; globex with one of its own."""
    acme, globex = tenant_factory("acme"), tenant_factory("globex")
    fibre, copper = plan_factory(acme, name="Fibre"), plan_factory(acme, name="Copper", price="9.50")
    rows = [
        ("Zoe", "zoe@acme.test", "+1 555 0001", "A-3", "1 Elm St", fibre, "pending"),
        ("Bob", "bob@acme.test", "+1 555 0002", "A-1", "9 Oak Ave", copper, "active"),
        ("Mia", "mia@acme.test", "+1 555 0003", "A-5", "4 Elm St", fibre, "suspended"),
        ("Ann", "ann@acme.test", "+1 555 0004", "A-2", "7 Pine Rd", fibre, "active"),
        ("Tom", "tom@acme.test", "+1 555 0005", "A-4", "2 Ash Ct", copper, "terminated"),
    ]
    subscribers = {}
    for name, email, phone, account, address, plan, status in rows:
        subscribers[name] = Subscriber.objects.create(
            tenant=acme,
            name=name,
            email=email,
            phone=phone,
            account_number=account,
            service_address=address,
            plan=plan,
            status=status,
        )
    gus = Subscriber.objects.create(
        tenant=globex, name="Gus", email="gus@globex.test", plan=plan_factory(globex), status="pending"
    )
    return {
        "acme": acme,
        "globex": globex,
        "fibre": fibre,
        "copper": copper,
        "alice": staff_factory(acme, "alice"),
        "bob": staff_factory(globex, "bob"),
        "gus": gus,
        **subscribers,
    }


def names(response) -> list[str]:
    return [subscriber.name for subscriber in response.context["page"].object_list]


def test_default_list_total_and_filters_with_counts(client, shop):
    client.force_login(shop["alice"])
    response = client.get(LIST)
    assert sorted(names(response)) == ["Ann", "Bob", "Mia", "Zoe"]  # terminated ones left out
    page = response.content.decode()
    assert "Showing 1\u20134 of 4 subscribers" in page
    for option in ("All (4)", "Pending (1)", "Active (2)", "Suspended (1)", "Terminated (1)"):
        assert option in page, option
    assert "Fibre (3)" in page and "Copper (1)" in page and "All plans (4)" in page
    assert names(client.get(LIST, {"status": "active"})) == ["Ann", "Bob"]
    assert names(client.get(LIST, {"status": "terminated"})) == ["Tom"]
    assert sorted(names(client.get(LIST, {"plan": shop["copper"].pk}))) == ["Bob"]
    assert names(client.get(LIST, {"plan": shop["fibre"].pk, "status": "pending"})) == ["Zoe"]
    # Another tenant's plan selects nothing of it.
    assert names(client.get(LIST, {"plan": shop["gus"].plan_id})) == []


def test_the_counts_follow_a_change_at_once(client, shop, django_capture_on_commit_callbacks):
    """Cached for the list's speed, but never showing a change the staff member just made."""
    client.force_login(shop["alice"])
    assert "Pending (1)" in client.get(LIST).content.decode()
    with django_capture_on_commit_callbacks(execute=True):  # as the requests' commits would
        created = client.post(
            reverse("subscribers:create"), {"name": "Eve", "email": "eve@acme.test", "plan": shop["fibre"].pk}
        )
    assert created.status_code == 302
    assert "Pending (2)" in client.get(LIST).content.decode()
    suspend = reverse("subscribers:suspend", args=[shop["Zoe"].pk])
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(suspend, {"reason": "unpaid", "confirm": "on"}).status_code == 302
    page = client.get(LIST).content.decode()
    assert "Pending (1)" in page and "Suspended (2)" in page


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("name", ["Ann", "Bob", "Mia", "Zoe"]),
        ("-name", ["Zoe", "Mia", "Bob", "Ann"]),
        ("account", ["Bob", "Ann", "Zoe", "Mia"]),
        ("-account", ["Mia", "Zoe", "Ann", "Bob"]),
        ("email", ["Ann", "Bob", "Mia", "Zoe"]),
        ("phone", ["Zoe", "Bob", "Mia", "Ann"]),
        ("-phone", ["Ann", "Mia", "Bob", "Zoe"]),
        ("plan", ["Bob", "Zoe", "Mia", "Ann"]),
        ("status", ["Bob", "Ann", "Zoe", "Mia"]),
        ("created", ["Zoe", "Bob", "Mia", "Ann"]),
        ("-created", ["Ann", "Mia", "Bob", "Zoe"]),
    ],
)
def test_every_column_sorts(client, shop, sort, expected):
    client.force_login(shop["alice"])
    assert names(client.get(LIST, {"sort": sort})) == expected


@pytest.mark.parametrize(
    "sort",
    [
        "password",
        "-tenant__name",
        "plan__tenant__slug",
        "id; DROP TABLE x",
        "--name",
        "\u202eevil",
        "9" * 5000,
    ],
)
def test_a_hostile_sort_gets_the_default_order(client, shop, sort):
    client.force_login(shop["alice"])
    response = client.get(LIST, {"sort": sort})
    assert response.status_code == 200
    assert names(response) == ["Ann", "Mia", "Bob", "Zoe"]


def test_the_sort_links_keep_the_filters_and_say_the_order(client, shop):
    client.force_login(shop["alice"])
    page = client.get(LIST, {"sort": "name", "status": "active", "q": "o"}).content.decode()
    assert 'aria-sort="ascending"><a href="?q=o&amp;status=active&amp;sort=-name">Name</a>' in page
    assert '<a href="?q=o&amp;status=active&amp;sort=email">Email</a>' in page


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("ZOE", ["Zoe"]),
        ("bob@", ["Bob"]),
        ("555 0003", ["Mia"]),
        ("a-2", ["Ann"]),
        ("elm st", ["Mia", "Zoe"]),
    ],
)
def test_search_on_name_email_phone_account_and_address(client, shop, q, expected):
    client.force_login(shop["alice"])
    assert sorted(names(client.get(LIST, {"q": q}))) == expected


def test_pagination_keeps_filters_and_sort(client, shop):
    for n in range(30):
        Subscriber.objects.create(
            tenant=shop["acme"],
            name=f"P{n:02d}",
            email=f"p{n}@acme.test",
            plan=shop["fibre"],
            status="active",
        )
    client.force_login(shop["alice"])
    first = client.get(LIST, {"status": "active", "sort": "name"})
    assert len(names(first)) == 25 and first.context["page"].paginator.count == 32
    assert "Showing 1\u201325 of 32 subscribers" in first.content.decode()
    assert 'href="?page=2&amp;status=active&amp;sort=name"' in first.content.decode()
    second = client.get(LIST, {"status": "active", "sort": "name", "page": "2"})
    assert names(second) == [f"P{n:02d}" for n in range(23, 30)]


def _list_queries(client) -> int:
    client.get(LIST)  # the session's own first-request work is not the list's
    cache.clear()  # the counts are computed, not read from the cache, in each measure
    with CaptureQueriesContext(connection) as queries:
        response = client.get(LIST, {"status": "active", "sort": "-plan", "q": "@"})
    assert response.status_code == 200
    return len(queries)


def test_a_list_page_costs_the_same_number_of_queries_at_5_and_at_200_subscribers(client, shop):
    client.force_login(shop["alice"])
    small = _list_queries(client)
    Subscriber.objects.bulk_create(
        Subscriber(
            tenant=shop["acme"],
            name=f"Bulk {n}",
            email=f"bulk{n}@acme.test",
            plan=shop["fibre" if n % 2 else "copper"],
            status="active",
        )
        for n in range(195)
    )
    large = _list_queries(client)
    assert large == small, (small, large)
    assert small <= 8, small


def _export(client, **params) -> list[list[str]]:
    response = client.get(reverse("subscribers:export"), params)
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="subscribers-acme-')
    assert "no-store" in response["Cache-Control"]
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_export_is_the_filtered_list_of_the_tenant_only(client, shop):
    client.force_login(shop["alice"])
    header, *rows = _export(client)
    assert header == [heading for heading, _field in EXPORT_COLUMNS]
    assert sorted(row[1] for row in rows) == ["Ann", "Bob", "Mia", "Zoe"]
    for params in ({"status": "active", "sort": "name"}, {"q": "elm"}, {"plan": shop["copper"].pk}):
        _header, *rows = _export(client, **params)
        shown = client.get(LIST, params)
        assert [row[2] for row in rows] == [s.email for s in shown.context["page"].object_list], params
    _header, *terminated = _export(client, status="terminated")
    assert [row[1] for row in terminated] == ["Tom"]
    zoe = next(row for row in _export(client, q="zoe")[1:])
    assert zoe[5:9] == ["Fibre", "29.00", "USD", "pending"]
    # Another tenant's staff gets their own tenant's rows, never acme's.
    client.force_login(shop["bob"])
    response = client.get(reverse("subscribers:export"))
    body = b"".join(response.streaming_content).decode()
    assert "gus@globex.test" in body and "acme.test" not in body


def test_the_export_neutralises_spreadsheet_formulas(client, shop):
    hostile = ['=HYPERLINK("http://evil")', "+1+2", "-2+3", "@SUM(A1)", "\tTAB", "\rCR"]
    for n, text in enumerate(hostile):
        Subscriber.objects.create(
            tenant=shop["acme"],
            name=text,
            email=f"h{n}@acme.test",
            phone=text,
            service_address=text,
            account_number=f"{text[:20]}{n}",
            plan=shop["fibre"],
        )
    client.force_login(shop["alice"])
    rows = [row for row in _export(client)[1:] if row[2].startswith("h")]
    assert len(rows) == len(hostile)
    for row in rows:
        for cell in (row[0], row[1], row[3], row[4]):
            assert cell.startswith("'"), row
    assert any(row[3] == "'+1+2" for row in rows)
    # Harmless text is left as it is.
    bob = next(row for row in _export(client, q="bob")[1:])
    assert bob[:2] == ["A-1", "Bob"]


@pytest.fixture
def provisioning(settings, upstream, fresh_breakers):  # noqa: F811
    settings.PROVISIONING_API_URL = upstream.url
    configure(settings, "provisioning", fail_max=5, reset_timeout=60, request_timeout=1)
    return upstream


def test_bulk_retry_activation_asks_for_confirmation_then_activates_the_pending_ones(
    client, shop, provisioning
):
    extra = [
        Subscriber.objects.create(
            tenant=shop["acme"], name=f"Pen {n}", email=f"pen{n}@acme.test", plan=shop["fibre"]
        )
        for n in range(3)
    ]
    ids = [s.pk for s in (*extra, shop["Zoe"], shop["Bob"], shop["gus"])]
    client.force_login(shop["alice"])
    asked = client.post(reverse("subscribers:bulk"), {"action": "activate", "ids": ids})
    assert asked.status_code == 200
    assert [s.name for s in asked.context["chosen"]] == ["Zoe", "Pen 0", "Pen 1", "Pen 2"]
    assert asked.context["skipped"] == 2  # Bob is active; Gus is another tenant's
    assert provisioning.request_count == 0
    # Without the confirmation: asked again, nothing sent.
    again = client.post(reverse("subscribers:bulk"), {"action": "activate", "ids": ids, "step": "confirm"})
    assert again.status_code == 200 and again.context["form"].errors
    assert provisioning.request_count == 0
    done = client.post(
        reverse("subscribers:bulk"),
        {"action": "activate", "ids": ids, "step": "confirm", "confirm": "on"},
        follow=True,
    )
    assert "4 of 4 subscribers activated." in done.content.decode()
    assert {s.pk for s in Subscriber.objects.filter(status="active", tenant=shop["acme"])} >= {
        shop["Zoe"].pk,
        *(s.pk for s in extra),
    }
    assert provisioning.request_count == 4
    assert sorted(r.json()["subscriber_id"] for r in provisioning.requests) == sorted(
        [shop["Zoe"].pk, *(s.pk for s in extra)]
    )
    shop["gus"].refresh_from_db()
    assert shop["gus"].status == "pending"
    assert ActivityEntry.objects.filter(subscriber=shop["gus"]).count() == 0


def test_bulk_retry_stops_at_the_first_unavailable_answer(client, shop, provisioning):
    extra = [
        Subscriber.objects.create(
            tenant=shop["acme"], name=f"Pen {n}", email=f"pen{n}@acme.test", plan=shop["fibre"]
        )
        for n in range(3)
    ]
    provisioning.status = 503
    client.force_login(shop["alice"])
    done = client.post(
        reverse("subscribers:bulk"),
        {"action": "activate", "ids": [s.pk for s in extra], "step": "confirm", "confirm": "on"},
        follow=True,
    )
    page = done.content.decode()
    assert "0 of 3 subscribers activated." in page and "Provisioning is temporarily unavailable" in page
    assert provisioning.request_count == 1
    assert set(Subscriber.objects.filter(pk__in=[s.pk for s in extra]).values_list("status", flat=True)) == {
        "pending"
    }


def test_bulk_suspend_needs_a_reason_and_confirmation_and_ignores_other_tenants(client, shop):
    ids = [shop["Ann"].pk, shop["Zoe"].pk, shop["Mia"].pk, shop["gus"].pk]
    client.force_login(shop["alice"])
    asked = client.post(reverse("subscribers:bulk"), {"action": "suspend", "ids": ids})
    assert [s.name for s in asked.context["chosen"]] == ["Zoe", "Ann"]  # Mia is suspended already
    for incomplete in ({"confirm": "on"}, {"reason": "Storm damage"}):
        again = client.post(
            reverse("subscribers:bulk"), {"action": "suspend", "ids": ids, "step": "confirm", **incomplete}
        )
        assert again.status_code == 200 and again.context["form"].errors
    assert Subscriber.objects.filter(status="suspended").count() == 1
    done = client.post(
        reverse("subscribers:bulk"),
        {"action": "suspend", "ids": ids, "step": "confirm", "confirm": "on", "reason": "Storm damage"},
        follow=True,
    )
    assert "2 of 2 subscribers suspended." in done.content.decode()
    suspended = Subscriber.objects.filter(status="suspended").order_by("name")
    assert [s.name for s in suspended] == ["Ann", "Mia", "Zoe"]
    entries = ActivityEntry.objects.filter(action="suspended").order_by("subscriber__name")
    assert list(entries.values_list("subscriber__name", "reason", "actor_name")) == [
        ("Ann", "Storm damage", "alice"),
        ("Zoe", "Storm damage", "alice"),
    ]
    shop["gus"].refresh_from_db()
    assert shop["gus"].status == "pending"


@pytest.mark.parametrize(
    "data",
    [
        {"action": "suspend", "ids": ["x", "-1", "9" * 40]},
        {"action": "nope", "ids": ["1"]},
        {"ids": ["1"]},
        {"action": "suspend"},
    ],
)
def test_bulk_with_nothing_it_applies_to_goes_back_to_the_list(client, shop, data):
    client.force_login(shop["alice"])
    response = client.post(reverse("subscribers:bulk"), data)
    assert response.status_code == 302 and response["Location"] == LIST


def test_another_tenants_staff_only_ever_acts_on_their_own(client, shop):
    client.force_login(shop["bob"])
    acme_ids = [shop[name].pk for name in ("Ann", "Zoe", "Bob")]
    response = client.post(
        reverse("subscribers:bulk"),
        {"action": "suspend", "ids": acme_ids, "step": "confirm", "confirm": "on", "reason": "x"},
    )
    assert response.status_code == 302
    assert Subscriber.objects.filter(tenant=shop["acme"], status="suspended").count() == 1
    assert ActivityEntry.objects.count() == 0
    plans = client.get(reverse("subscribers:plans"))
    assert [plan.name for plan in plans.context["plans"]] == ["Home 100"]
    assert b"Fibre" not in plans.content


def test_the_plans_page_shows_each_plans_counts_by_status_in_one_query(client, shop):
    client.force_login(shop["alice"])
    client.get(reverse("subscribers:plans"))
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("subscribers:plans"))
    assert response.status_code == 200
    on_plans = [q["sql"] for q in queries.captured_queries if "subscribers_serviceplan" in q["sql"]]
    assert len(on_plans) == 1, on_plans
    plans = {
        plan.name: (plan.pending, plan.active, plan.suspended, plan.terminated, plan.total)
        for plan in response.context["plans"]
    }
    assert plans == {"Copper": (0, 1, 0, 1, 2), "Fibre": (1, 1, 1, 0, 3)}
    page = response.content.decode()
    assert "9.50 USD" in page and "29.00 USD" in page
    assert '<th scope="col">Terminated</th>' in page


def test_the_new_pages_need_a_member_of_the_tenant(client, shop, django_user_model):
    paths = [reverse("subscribers:plans"), reverse("subscribers:export")]
    for path in paths:
        assert client.get(path).status_code == 302
    client.force_login(django_user_model.objects.create_user(username="nobody", password="pw-123456"))
    for path in paths:
        assert client.get(path).status_code == 403
    assert (
        client.post(reverse("subscribers:bulk"), {"action": "suspend", "ids": [shop["Ann"].pk]}).status_code
        == 403
    )


def test_bulk_retry_starts_no_request_after_its_time_budget(client, shop, provisioning, monkeypatch):
    monkeypatch.setattr("apps.subscribers.views.BULK_ACTIVATION_SECONDS", 0.5)
    provisioning.delay = 0.4
    extra = [
        Subscriber.objects.create(
            tenant=shop["acme"], name=f"Pen {n}", email=f"pen{n}@acme.test", plan=shop["fibre"]
        )
        for n in range(4)
    ]
    client.force_login(shop["alice"])
    done = client.post(
        reverse("subscribers:bulk"),
        {"action": "activate", "ids": [s.pk for s in extra], "step": "confirm", "confirm": "on"},
        follow=True,
    )
    page = done.content.decode()
    tried = provisioning.request_count
    assert 1 <= tried <= 2, tried
    assert f"{tried} of 4 subscribers activated." in page
    assert f"Stopped to answer in time: {4 - tried} not tried yet stay pending" in page
    statuses = Subscriber.objects.filter(pk__in=[s.pk for s in extra]).values_list("status", flat=True)
    assert sorted(statuses) == ["active"] * tried + ["pending"] * (4 - tried)
