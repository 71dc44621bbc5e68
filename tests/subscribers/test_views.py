"""Subscriber views for a tenant's staff, and absolute tenant isolation."""

import pytest
from django.urls import reverse

from apps.subscribers.models import ServicePlan, Subscriber

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(tenant_factory, staff_factory, plan_factory):
    """Two tenants, each with staff, a plan and a subscriber."""
    acme, globex = tenant_factory("acme"), tenant_factory("globex")
    acme_plan, globex_plan = plan_factory(acme), plan_factory(globex, name="Globex 1G", down=1000)
    alice = staff_factory(acme, "alice")
    bob = staff_factory(globex, "bob")
    acme_sub = Subscriber.objects.create(tenant=acme, name="Ann", email="ann@acme.test", plan=acme_plan)
    globex_sub = Subscriber.objects.create(
        tenant=globex, name="Gus", email="gus@globex.test", plan=globex_plan
    )
    return {
        "acme": acme,
        "globex": globex,
        "acme_plan": acme_plan,
        "globex_plan": globex_plan,
        "alice": alice,
        "bob": bob,
        "acme_sub": acme_sub,
        "globex_sub": globex_sub,
    }


def _snapshot():
    return list(
        Subscriber.objects.order_by("pk").values_list("pk", "tenant_id", "name", "email", "plan_id", "status")
    )


def test_pages_require_login(client, world):
    response = client.get(reverse("subscribers:list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_list_shows_only_own_tenant(client, world):
    client.force_login(world["alice"])
    response = client.get(reverse("subscribers:list"))
    assert response.status_code == 200
    assert b"ann@acme.test" in response.content
    assert b"gus@globex.test" not in response.content


def test_list_shows_the_tenants_status_counts_from_the_cache_for_ten_seconds(client, world):
    Subscriber.objects.create(
        tenant=world["acme"], name="Al", email="al@acme.test", plan=world["acme_plan"], status="active"
    )
    client.force_login(world["alice"])
    assert b"1 pending \xc2\xb7 1 active" in client.get(reverse("subscribers:list")).content
    Subscriber.objects.filter(email="al@acme.test").update(status="suspended")
    # Cached per tenant: the summary may lag a change by up to STATUS_COUNTS_CACHE_SECONDS.
    assert b"1 pending \xc2\xb7 1 active" in client.get(reverse("subscribers:list")).content


def test_list_search_by_name_or_email_and_pagination(client, world):
    for i in range(30):
        Subscriber.objects.create(
            tenant=world["acme"], name=f"Zed {i:02d}", email=f"zed{i}@acme.test", plan=world["acme_plan"]
        )
    client.force_login(world["alice"])
    page1 = client.get(reverse("subscribers:list"))
    assert len(page1.context["page"].object_list) == 25
    assert page1.context["page"].paginator.count == 31
    found = client.get(reverse("subscribers:list"), {"q": "zed1"})
    emails = {s.email for s in found.context["page"].object_list}
    assert emails == {f"zed{i}@acme.test" for i in [1, *range(10, 20)]}
    by_name = client.get(reverse("subscribers:list"), {"q": "ann"})
    assert [s.email for s in by_name.context["page"].object_list] == ["ann@acme.test"]
    assert client.get(reverse("subscribers:list"), {"page": "9999"}).status_code == 200
    assert client.get(reverse("subscribers:list"), {"page": "abc"}).status_code == 200


def test_create_subscriber(client, world):
    client.force_login(world["alice"])
    response = client.post(
        reverse("subscribers:create"),
        {"name": "New One", "email": "New@Acme.test", "plan": world["acme_plan"].pk},
    )
    created = Subscriber.objects.get(email="new@acme.test")
    assert response.status_code == 302
    assert response["Location"] == reverse("subscribers:detail", args=[created.pk])
    assert created.tenant == world["acme"]
    assert created.status == Subscriber.Status.PENDING


def test_create_with_another_tenants_plan_is_a_form_error_and_writes_nothing(client, world):
    client.force_login(world["alice"])
    before = _snapshot()
    response = client.post(
        reverse("subscribers:create"),
        {"name": "Sneaky", "email": "s@acme.test", "plan": world["globex_plan"].pk},
    )
    assert response.status_code == 200
    assert "plan" in response.context["form"].errors
    assert _snapshot() == before


def test_create_rejects_duplicate_email_in_same_tenant(client, world):
    client.force_login(world["alice"])
    response = client.post(
        reverse("subscribers:create"),
        {"name": "Dup", "email": "ann@acme.test", "plan": world["acme_plan"].pk},
    )
    assert response.status_code == 200
    assert "email" in response.context["form"].errors


@pytest.mark.parametrize("name", ["detail", "edit"])
def test_cross_tenant_read_is_404(client, world, name):
    client.force_login(world["alice"])
    response = client.get(reverse(f"subscribers:{name}", args=[world["globex_sub"].pk]))
    assert response.status_code == 404


def test_cross_tenant_edit_and_suspend_are_404_and_change_nothing(client, world):
    client.force_login(world["alice"])
    before = _snapshot()
    target = world["globex_sub"].pk
    edit = client.post(
        reverse("subscribers:edit", args=[target]),
        {"name": "Hacked", "email": "h@acme.test", "plan": world["acme_plan"].pk},
    )
    suspend = client.post(reverse("subscribers:suspend", args=[target]))
    assert (edit.status_code, suspend.status_code) == (404, 404)
    assert _snapshot() == before


def test_edit_own_subscriber_cannot_move_it_to_another_tenants_plan(client, world):
    client.force_login(world["alice"])
    before = _snapshot()
    own = world["acme_sub"].pk
    response = client.post(
        reverse("subscribers:edit", args=[own]),
        {"name": "Ann", "email": "ann@acme.test", "plan": world["globex_plan"].pk},
    )
    assert response.status_code == 200
    assert "plan" in response.context["form"].errors
    assert _snapshot() == before


def test_header_naming_another_tenant_is_refused(client, settings, world):
    settings.TENANT_HEADER_ENABLED = True
    client.force_login(world["alice"])
    before = _snapshot()
    listing = client.get(reverse("subscribers:list"), HTTP_X_TENANT_ID="globex")
    detail = client.get(
        reverse("subscribers:detail", args=[world["globex_sub"].pk]), HTTP_X_TENANT_ID="globex"
    )
    suspend = client.post(
        reverse("subscribers:suspend", args=[world["globex_sub"].pk]), HTTP_X_TENANT_ID="globex"
    )
    assert listing.status_code == 403
    assert detail.status_code in (403, 404)
    assert suspend.status_code in (403, 404)
    assert b"gus@globex.test" not in listing.content + detail.content
    assert _snapshot() == before


def test_suspend_own_subscriber_after_confirming_with_a_reason(client, world):
    client.force_login(world["alice"])
    sub = world["acme_sub"]
    url = reverse("subscribers:suspend", args=[sub.pk])
    asked = client.get(url)  # the confirmation page, which changes nothing
    assert asked.status_code == 200
    assert "Suspend" in asked.content.decode() and "reason" in asked.context["form"].fields
    # Without a reason or without the confirmation: the page again, with the error; nothing changes.
    for data in ({}, {"confirm": "on"}, {"reason": "   ", "confirm": "on"}, {"reason": "Unpaid"}):
        again = client.post(url, data)
        assert again.status_code == 200 and again.context["form"].errors, data
        sub.refresh_from_db()
        assert sub.status == Subscriber.Status.PENDING
    response = client.post(url, {"reason": "Unpaid since March", "confirm": "on"})
    assert response.status_code == 302
    sub.refresh_from_db()
    assert sub.status == Subscriber.Status.SUSPENDED


def test_edit_own_subscriber(client, world):
    client.force_login(world["alice"])
    sub = world["acme_sub"]
    response = client.post(
        reverse("subscribers:edit", args=[sub.pk]),
        {"name": "Ann Renamed", "email": "ann@acme.test", "plan": world["acme_plan"].pk},
    )
    assert response.status_code == 302
    sub.refresh_from_db()
    assert sub.name == "Ann Renamed"


def test_user_without_membership_is_refused(client, world, django_user_model):
    loner = django_user_model.objects.create_user(username="loner", password="pw-123456")
    client.force_login(loner)
    assert client.get(reverse("subscribers:list")).status_code == 403


def test_admin_rejects_a_plan_of_another_tenant(client, world, django_user_model):
    root = django_user_model.objects.create_superuser(username="root", password="pw-123456")
    client.force_login(root)
    before = _snapshot()
    sub = world["acme_sub"]
    response = client.post(
        reverse("admin:subscribers_subscriber_change", args=[sub.pk]),
        {
            "tenant": world["acme"].pk,
            "name": sub.name,
            "email": sub.email,
            "plan": world["globex_plan"].pk,
            "status": sub.status,
        },
    )
    assert response.status_code == 200
    assert "belongs to another tenant" in response.content.decode()
    assert _snapshot() == before


def test_admin_refuses_to_move_a_plan_with_subscribers_to_another_tenant(client, world, django_user_model):
    root = django_user_model.objects.create_superuser(username="root", password="pw-123456")
    client.force_login(root)
    plan = world["acme_plan"]
    before = _snapshot(), list(ServicePlan.objects.order_by("pk").values_list("pk", "tenant_id"))
    response = client.post(
        reverse("admin:subscribers_serviceplan_change", args=[plan.pk]),
        {
            "tenant": world["globex"].pk,
            "name": plan.name,
            "download_mbps": plan.download_mbps,
            "upload_mbps": plan.upload_mbps,
            "monthly_price": plan.monthly_price,
            "currency": "USD",
        },
    )
    assert response.status_code == 200
    assert "cannot move to this tenant" in response.content.decode()
    assert (_snapshot(), list(ServicePlan.objects.order_by("pk").values_list("pk", "tenant_id"))) == before
    # A plan nobody is on may move.
    idle = ServicePlan.objects.create(
        tenant=world["acme"], name="Idle", download_mbps=10, upload_mbps=1, monthly_price="1.00"
    )
    response = client.post(
        reverse("admin:subscribers_serviceplan_change", args=[idle.pk]),
        {
            "tenant": world["globex"].pk,
            "name": "Idle",
            "download_mbps": 10,
            "upload_mbps": 1,
            "monthly_price": "1.00",
            "currency": "EUR",
        },
    )
    assert response.status_code == 302
    idle.refresh_from_db()
    assert (idle.tenant, idle.currency) == (world["globex"], "EUR")


def test_seed_demo_is_idempotent(db):
    from django.core.management import call_command

    from apps.subscribers.models import ServicePlan
    from apps.tenants.models import Tenant

    call_command("seed_demo")
    counts = (Tenant.objects.count(), ServicePlan.objects.count(), Subscriber.objects.count())
    call_command("seed_demo")
    assert (Tenant.objects.count(), ServicePlan.objects.count(), Subscriber.objects.count()) == counts
    assert counts == (1, 3, 4)


@pytest.mark.parametrize("page", ["list", "create", "detail", "edit"])
def test_pages_with_subscriber_data_are_never_stored_by_a_cache(client, world, page):
    client.force_login(world["alice"])
    args = [world["acme_sub"].pk] if page in ("detail", "edit") else []
    response = client.get(reverse(f"subscribers:{page}", args=args))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]
