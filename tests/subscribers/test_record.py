"""The subscriber record's fields (phone, service address, account number, notes) and plan currencies."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from apps.subscribers.forms import DUPLICATE_ACCOUNT
from apps.subscribers.models import DEFAULT_CURRENCY, ServicePlan, Subscriber

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme(tenant_factory, staff_factory, plan_factory):
    tenant = tenant_factory("acme")
    return tenant, staff_factory(tenant, "alice"), plan_factory(tenant)


def test_the_form_takes_the_record_fields_and_the_detail_page_shows_them(client, acme):
    _tenant, alice, plan = acme
    client.force_login(alice)
    form = {
        "name": "Ann",
        "email": "ann@acme.test",
        "plan": plan.pk,
        "phone": "+44 20 7946 0958",
        "account_number": "  ACC-0042 ",
        "service_address": "12 Fibre Lane, Leeds",
        "notes": "Gate code 1234.\nDog in the yard.",
    }
    response = client.post(reverse("subscribers:create"), form)
    assert response.status_code == 302
    ann = Subscriber.objects.get(email="ann@acme.test")
    assert (ann.phone, ann.account_number, ann.service_address) == (
        "+44 20 7946 0958",
        "ACC-0042",
        "12 Fibre Lane, Leeds",
    )
    page = client.get(reverse("subscribers:detail", args=[ann.pk])).content.decode()
    for shown in (
        "+44 20 7946 0958",
        "ACC-0042",
        "12 Fibre Lane, Leeds",
        "Gate code 1234.<br>Dog in the yard.",
    ):
        assert shown in page
    assert "29.00 USD / month" in page
    # Every field of the form has its label.
    form_page = client.get(reverse("subscribers:create")).content.decode()
    for field in ("name", "email", "phone", "account_number", "service_address", "plan", "notes"):
        assert f'<label for="id_{field}">' in form_page, field


def test_account_numbers_are_unique_per_tenant_in_the_form_and_the_database(client, acme, tenant_factory):
    tenant, alice, plan = acme
    Subscriber.objects.create(tenant=tenant, name="A", email="a@acme.test", plan=plan, account_number="X-1")
    client.force_login(alice)
    response = client.post(
        reverse("subscribers:create"),
        {"name": "B", "email": "b@acme.test", "plan": plan.pk, "account_number": "X-1"},
    )
    assert response.status_code == 200
    assert response.context["form"].errors["account_number"] == [DUPLICATE_ACCOUNT]
    with pytest.raises(IntegrityError), transaction.atomic():
        Subscriber.objects.create(
            tenant=tenant, name="B", email="b@acme.test", plan=plan, account_number="X-1"
        )
    # Another tenant may use the same number; subscribers without one never collide.
    globex = tenant_factory("globex")
    other_plan = ServicePlan.objects.create(
        tenant=globex, name="G", download_mbps=1, upload_mbps=1, monthly_price="1.00"
    )
    Subscriber.objects.create(
        tenant=globex, name="G", email="g@globex.test", plan=other_plan, account_number="X-1"
    )
    for n in range(2):
        Subscriber.objects.create(tenant=tenant, name=f"N{n}", email=f"n{n}@acme.test", plan=plan)
    # Editing a subscriber keeps its own number without complaint.
    a = Subscriber.objects.get(email="a@acme.test")
    edit = client.post(
        reverse("subscribers:edit", args=[a.pk]),
        {"name": "A2", "email": "a@acme.test", "plan": plan.pk, "account_number": "X-1"},
    )
    assert edit.status_code == 302


def test_a_terminated_subscribers_account_number_is_never_reused(client, acme):
    tenant, alice, plan = acme
    Subscriber.objects.create(
        tenant=tenant, name="A", email="a@acme.test", plan=plan, account_number="X-9", status="terminated"
    )
    client.force_login(alice)
    response = client.post(
        reverse("subscribers:create"),
        {"name": "B", "email": "a@acme.test", "plan": plan.pk, "account_number": "X-9"},
    )
    assert response.context["form"].errors == {"account_number": [DUPLICATE_ACCOUNT]}


def test_plans_have_a_currency_defaulting_to_the_module_constant(acme):
    tenant, _alice, plan = acme
    assert DEFAULT_CURRENCY == "USD" and plan.currency == "USD"
    euro = ServicePlan(
        tenant=tenant, name="E", download_mbps=1, upload_mbps=1, monthly_price="9", currency="EUR"
    )
    euro.full_clean()
    for bad in ("eur", "EURO", "E1R", ""):
        euro.currency = bad
        with pytest.raises(ValidationError):
            euro.full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        ServicePlan.objects.create(
            tenant=tenant, name="Bad", download_mbps=1, upload_mbps=1, monthly_price="1", currency="usd"
        )


def test_the_previous_releases_inserts_still_work_after_the_migration(acme):
    """During a rollout the old code, which names none of the new columns, keeps creating plans and
    subscribers: every added column has a database default."""
    from django.db import connection

    tenant, _alice, plan = acme
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO subscribers_serviceplan"
            " (tenant_id, name, download_mbps, upload_mbps, monthly_price)"
            " VALUES (%s, 'Old', 1, 1, 5) RETURNING id",
            [tenant.pk],
        )
        [old_plan_id] = cursor.fetchone()
        cursor.execute(
            "INSERT INTO subscribers_subscriber"
            " (tenant_id, plan_id, name, email, status, created_at, updated_at)"
            " VALUES (%s, %s, 'Old', 'old@acme.test', 'pending', now(), now()) RETURNING id",
            [tenant.pk, plan.pk],
        )
        [old_id] = cursor.fetchone()
    old = Subscriber.objects.get(pk=old_id)
    assert (old.phone, old.account_number, old.service_address, old.notes, old.suspensions) == (
        "",
        "",
        "",
        "",
        0,
    )
    assert ServicePlan.objects.get(pk=old_plan_id).currency == DEFAULT_CURRENCY
