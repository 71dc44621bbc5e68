"""An admin action on a selection that names no row (a forged or garbled form) gets the list again
with a message, not a 500 from PostgreSQL's type check, and deletes nothing; an autocomplete field
naming no row is a form error."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages

from apps.subscribers.models import Subscriber
from apps.tenants.models import Tenant

pytestmark = pytest.mark.django_db

CHANGELISTS = [
    "/admin/tenants/tenant/",
    "/admin/tenants/membership/",
    "/admin/subscribers/serviceplan/",
    "/admin/subscribers/subscriber/",
    "/admin/auth/user/",
    "/admin/auth/group/",
    "/admin/ops/breakerconfigoverride/",
]


@pytest.mark.parametrize("url", CHANGELISTS)
@pytest.mark.parametrize("selection", [["abc"], ["1", "\0"], ["1.5"]])
def test_an_action_on_a_selection_naming_no_row_is_answered_with_a_message(
    client, django_user_model, tenant_factory, plan_factory, url, selection
):
    tenant = tenant_factory("acme")
    Subscriber.objects.create(tenant=tenant, plan=plan_factory(tenant), name="A", email="a@acme.test")
    client.force_login(django_user_model.objects.create_superuser(username="root", password="pw-123456"))
    form = {"action": "delete_selected", "_selected_action": selection, "index": "0", "post": "yes"}
    response = client.post(url, form)
    assert response.status_code == 302
    assert [str(message) for message in get_messages(response.wsgi_request)] == [
        "The selection names no item of this list."
    ]
    assert Tenant.objects.count() == 1 and Subscriber.objects.count() == 1


def test_a_valid_selection_still_runs_the_action(client, django_user_model, tenant_factory):
    tenant = tenant_factory("acme")
    client.force_login(django_user_model.objects.create_superuser(username="root", password="pw-123456"))
    form = {"action": "delete_selected", "_selected_action": [str(tenant.pk)], "post": "yes"}
    response = client.post("/admin/tenants/tenant/", form)
    assert response.status_code == 302
    assert not Tenant.objects.exists()


@pytest.mark.parametrize(
    "url,form",
    [
        (
            "/admin/tenants/tenant/add/",
            {"slug": "new", "name": "New", "memberships-TOTAL_FORMS": "1", "memberships-INITIAL_FORMS": "0"}
            | {"memberships-0-user": "abc"},
        ),
        ("/admin/tenants/membership/add/", {"user": "abc", "tenant": "1\0"}),
    ],
)
def test_an_autocomplete_field_naming_no_row_is_a_form_error(client, django_user_model, url, form):
    client.force_login(django_user_model.objects.create_superuser(username="root", password="pw-123456"))
    response = client.post(url, form)
    assert response.status_code == 200
    assert "Select a valid choice." in response.content.decode()
    assert not Tenant.objects.exists()
