"""Hostile input on PostgreSQL: a NUL character anywhere a user types text gets a 400 that says why."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from apps.ops.request_guard import MESSAGE
from apps.subscribers.models import Subscriber

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, tenant_factory, staff_factory, plan_factory):
    tenant = tenant_factory("acme")
    plan_factory(tenant)
    client.force_login(staff_factory(tenant, "alice"))
    return client


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser(username="root", password="pw-123456"))
    return client


def refused(response) -> bool:
    return response.status_code == 400 and MESSAGE in response.content.decode()


@pytest.mark.parametrize("query", ["q=%00", "q=a%00b", "page=%00", "%00=1"])
def test_the_subscriber_list_refuses_a_nul_in_its_query(staff_client, query):
    assert refused(staff_client.get(f"/subscribers/?{query}"))


def test_the_text_percent_zero_zero_typed_by_a_person_is_searched_for(staff_client):
    response = staff_client.get("/subscribers/?q=%2500")  # a browser's encoding of the typed "%00"
    assert response.status_code == 200
    assert response.context["query"] == "%00"


@pytest.mark.parametrize(
    "url",
    [
        "/admin/subscribers/subscriber/?status__exact=%00",
        "/admin/subscribers/subscriber/?q=%00",
        "/admin/tenants/tenant/?slug=%00",
        "/admin/autocomplete/?app_label=tenants&model_name=membership&field_name=user&term=%00",
    ],
)
def test_the_admin_refuses_a_nul_in_filters_searches_and_autocomplete(admin_client, url):
    assert refused(admin_client.get(url))


def test_a_form_post_with_a_nul_is_refused_and_writes_nothing(staff_client):
    plan = staff_client.get("/subscribers/new/").context["form"].fields["plan"].queryset.get()
    form = {"name": "N\0ul", "email": "n@acme.test", "plan": plan.pk}
    before = Subscriber.objects.count()
    # As a browser sends the form: refused before any view runs.
    response = staff_client.post(
        "/subscribers/new/", urlencode(form), content_type="application/x-www-form-urlencoded"
    )
    assert refused(response)
    # As multipart (the guard leaves such bodies to the view): the form's own validator says no.
    response = staff_client.post("/subscribers/new/", form)
    assert response.status_code == 200
    assert "Null characters are not allowed." in response.content.decode()
    assert Subscriber.objects.count() == before


def test_the_api_answers_json(client):
    response = client.get("/api/v1/circuit-breakers/status?x=%00")
    assert response.status_code == 400
    assert json.loads(response.content) == {"error": MESSAGE}
