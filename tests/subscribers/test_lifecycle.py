"""The lifecycle (pending → active → suspended → active … → terminated) and the activity history,
against a real provisioning API that honours ``Idempotency-Key``."""

from __future__ import annotations

import time

import pytest
from django.core.management import call_command
from django.urls import reverse

from apps.subscribers.forms import SubscriberForm
from apps.subscribers.models import ActivityEntry, Subscriber
from tests.fleet.provisioning import ProvisioningAPI
from tests.ops.breaker_support import configure, fresh_breakers  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_breakers")]


@pytest.fixture
def provisioning_api():
    api = ProvisioningAPI().start()
    yield api
    api.stop()


@pytest.fixture
def shop(settings, provisioning_api, tenant_factory, staff_factory, plan_factory):
    settings.PROVISIONING_API_URL = provisioning_api.url
    configure(settings, "provisioning", fail_max=5, reset_timeout=60, request_timeout=1)
    acme = tenant_factory("acme")
    plan = plan_factory(acme, name="Fibre 500", down=500, up=100)
    alice = staff_factory(acme, "alice")
    ann = Subscriber.objects.create(tenant=acme, name="Ann", email="ann@acme.test", plan=plan)
    return {"tenant": acme, "plan": plan, "alice": alice, "ann": ann, "api": provisioning_api}


def status_of(subscriber) -> str:
    subscriber.refresh_from_db()
    return subscriber.status


def post(client, name, subscriber, data=None):
    return client.post(reverse(f"subscribers:{name}", args=[subscriber.pk]), data or {}, follow=True)


def wait_for(condition, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def history(subscriber) -> list[ActivityEntry]:
    return list(ActivityEntry.objects.filter(subscriber=subscriber).order_by("at", "id"))


def test_the_whole_lifecycle_is_recorded_and_provisions_once_per_key(client, shop):
    client.force_login(shop["alice"])
    api, ann = shop["api"], shop["ann"]

    # Activation whose answer is lost (slower than the request timeout): the API provisions, the
    # subscriber stays pending; the retry carries the same key and provisions nothing again.
    api.delay = 1.5
    page = post(client, "activate", ann).content.decode()
    assert "Provisioning is temporarily unavailable" in page and status_of(ann) == "pending"
    wait_for(lambda: len(api.log()) == 1, "the slow request to be answered")
    api.delay = 0
    assert "Ann is now active." in post(client, "activate", ann).content.decode()
    assert status_of(ann) == "active"

    # Suspend (a reason, confirmed), reinstate through provisioning.
    post(client, "suspend", ann, {"reason": "Unpaid invoice", "confirm": "on"})
    assert status_of(ann) == "suspended"
    assert "Ann is active again." in post(client, "reinstate", ann).content.decode()
    assert status_of(ann) == "active"

    # A second suspension; its reinstatement fails once (HTTP 500), then the retry succeeds.
    post(client, "suspend", ann, {"reason": "Abuse report", "confirm": "on"})
    api.status = 500
    page = post(client, "reinstate", ann).content.decode()
    assert "The subscriber stays suspended." in page and status_of(ann) == "suspended"
    api.status = 201
    post(client, "reinstate", ann)
    assert status_of(ann) == "active"

    post(client, "terminate", ann, {"reason": "Moved abroad", "confirm": "on"})
    assert status_of(ann) == "terminated"

    base = f"subscriber-acme-{ann.pk}"
    keys = [call.key for call in api.log()]
    assert keys == [
        base,
        base,
        f"{base}-reinstatement-1",
        f"{base}-reinstatement-2",
        f"{base}-reinstatement-2",
    ]
    provisioned_per_key = {}
    for call in api.log():
        if call.status == 201 and not call.replayed:
            provisioned_per_key[call.key] = provisioned_per_key.get(call.key, 0) + 1
    assert provisioned_per_key == {base: 1, f"{base}-reinstatement-1": 1, f"{base}-reinstatement-2": 1}

    entries = [
        (e.action, e.changes.get("status"), e.reason, e.outcome, e.upstream_status, e.actor_name)
        for e in history(ann)
    ]
    assert entries == [
        ("activation", None, "", "unavailable", None, "alice"),
        ("activation", ["pending", "active"], "", "succeeded", 201, "alice"),
        ("suspended", ["active", "suspended"], "Unpaid invoice", "", None, "alice"),
        ("reinstatement", ["suspended", "active"], "", "succeeded", 201, "alice"),
        ("suspended", ["active", "suspended"], "Abuse report", "", None, "alice"),
        ("reinstatement", None, "", "unavailable", 500, "alice"),
        ("reinstatement", ["suspended", "active"], "", "succeeded", 201, "alice"),
        ("terminated", ["active", "terminated"], "Moved abroad", "", None, "alice"),
    ]
    first = history(ann)[0]
    assert (first.error, first.idempotency_key) == ("No answer in time", base)

    # The detail page shows the history, newest first, with reasons and outcomes.
    page = client.get(reverse("subscribers:detail", args=[ann.pk])).content.decode()
    assert page.index("Moved abroad") < page.index("Abuse report") < page.index("Unpaid invoice")
    assert "Provisioning unavailable (HTTP 500)" in page and "No answer in time" in page
    assert "Reinstate</button>" not in page and "Activate</button>" not in page


def test_terminated_subscribers_leave_the_default_list_and_cannot_change(client, shop):
    client.force_login(shop["alice"])
    ann = shop["ann"]
    post(client, "terminate", ann, {"reason": "Duplicate account", "confirm": "on"})
    listing = client.get(reverse("subscribers:list"))
    assert b"ann@acme.test" not in listing.content
    terminated = client.get(reverse("subscribers:list"), {"status": "terminated"})
    assert [s.email for s in terminated.context["page"]] == ["ann@acme.test"]
    before = history(ann)
    for action in ("suspend", "activate", "reinstate"):
        post(client, action, ann, {"reason": "x", "confirm": "on"})
        assert status_of(ann) == "terminated"
    edit = client.post(reverse("subscribers:edit", args=[ann.pk]), {"name": "Changed"}, follow=True)
    assert "can no longer be changed" in edit.content.decode()
    ann.refresh_from_db()
    assert ann.name == "Ann" and history(ann) == before
    assert shop["api"].log() == []
    # A returning customer is a new subscriber; the terminated record keeps its email.
    client.post(
        reverse("subscribers:create"),
        {"name": "Ann Again", "email": "ann@acme.test", "plan": shop["plan"].pk},
    )
    assert Subscriber.objects.filter(email="ann@acme.test").count() == 2


def test_status_changes_only_through_the_actions(client, shop):
    assert "status" not in SubscriberForm(tenant=shop["tenant"]).fields
    client.force_login(shop["alice"])
    ann = shop["ann"]
    client.post(
        reverse("subscribers:edit", args=[ann.pk]),
        {"name": "Ann", "email": "ann@acme.test", "plan": shop["plan"].pk, "status": "active"},
    )
    assert status_of(ann) == "pending"


def test_only_suspended_subscribers_are_reinstated(client, shop):
    client.force_login(shop["alice"])
    page = post(client, "reinstate", shop["ann"]).content.decode()
    assert "Only suspended subscribers can be reinstated" in page
    assert status_of(shop["ann"]) == "pending" and shop["api"].log() == []
    assert client.get(reverse("subscribers:reinstate", args=[shop["ann"].pk])).status_code == 405


def test_create_and_edits_are_recorded_with_what_changed(client, shop, plan_factory):
    client.force_login(shop["alice"])
    gold = plan_factory(shop["tenant"], name="Gold")
    client.post(
        reverse("subscribers:create"),
        {"name": "Bea", "email": "bea@acme.test", "plan": shop["plan"].pk, "phone": "+1 555 0100"},
    )
    bea = Subscriber.objects.get(email="bea@acme.test")
    form = {"name": "Bea Long", "email": "bea@acme.test", "plan": gold.pk, "phone": "+1 555 0100"}
    client.post(reverse("subscribers:edit", args=[bea.pk]), form)
    client.post(reverse("subscribers:edit", args=[bea.pk]), form)  # no change: no entry
    created, edited = history(bea)
    assert (created.action, created.actor_name) == ("created", "alice")
    assert edited.action == "edited"
    assert edited.changes == {"name": ["Bea", "Bea Long"], "plan": ["Fibre 500", "Gold"]}
    page = client.get(reverse("subscribers:detail", args=[bea.pk])).content.decode()
    assert "Plan: <bdi>Fibre 500</bdi> → <bdi>Gold</bdi>" in page


def test_the_command_records_its_attempts_as_the_system(shop):
    api, ann = shop["api"], shop["ann"]
    call_command("activate_pending")
    [entry] = history(ann)
    assert (entry.action, entry.outcome, entry.actor) == ("activation", "succeeded", None)
    assert entry.actor_name == ""
    assert [call.key for call in api.log()] == [f"subscriber-acme-{ann.pk}"]


def test_without_provisioning_set_up_the_attempt_is_recorded_in_the_staffs_words(client, shop, settings):
    settings.PROVISIONING_API_URL = ""
    client.force_login(shop["alice"])
    page = post(client, "activate", shop["ann"]).content.decode()
    assert "Provisioning is not set up for this ISP yet — ask your platform administrator." in page
    assert "PROVISIONING_API_URL" not in page
    [entry] = history(shop["ann"])
    assert entry.outcome == "not_set_up"


def test_new_lifecycle_views_are_tenant_scoped(client, shop, tenant_factory, staff_factory):
    ann = shop["ann"]
    Subscriber.objects.filter(pk=ann.pk).update(status="suspended")
    client.force_login(staff_factory(tenant_factory("globex"), "bob"))
    for name in ("suspend", "terminate", "edit", "detail"):
        assert client.get(reverse(f"subscribers:{name}", args=[ann.pk])).status_code == 404, name
    for name in ("suspend", "terminate", "reinstate", "activate", "edit"):
        url = reverse(f"subscribers:{name}", args=[ann.pk])
        assert client.post(url, {"reason": "x", "confirm": "on"}).status_code == 404, name
    assert status_of(ann) == "suspended"
    assert history(ann) == [] and shop["api"].log() == []


def test_the_admin_shows_the_history_read_only(client, shop, django_user_model):
    client.force_login(shop["alice"])
    post(client, "suspend", shop["ann"], {"reason": "Chargeback", "confirm": "on"})
    client.force_login(django_user_model.objects.create_superuser(username="root", password="pw-123456"))
    page = client.get(reverse("admin:subscribers_subscriber_change", args=[shop["ann"].pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert "Chargeback" in text and "activity-TOTAL_FORMS" in text
    assert 'name="activity-0-reason"' not in text  # shown, not editable
    assert 'name="status"' not in text


def test_the_detail_page_says_when_provisioning_was_last_tried_and_what_it_answered(client, shop):
    client.force_login(shop["alice"])
    page = client.get(reverse("subscribers:detail", args=[shop["ann"].pk])).content.decode()
    assert "Last provisioning attempt</dt>\n    <dd>None yet" in page
    shop["api"].status = 503
    page = post(client, "activate", shop["ann"]).content.decode()
    answered = "Provisioning unavailable (HTTP 503): <bdi>Server error</bdi>."
    assert f"{answered} Pending subscribers are retried" in page


def test_admin_edits_are_recorded(client, shop, django_user_model):
    client.force_login(django_user_model.objects.create_superuser(username="root", password="pw-123456"))
    ann = shop["ann"]
    url = reverse("admin:subscribers_subscriber_change", args=[ann.pk])
    form = {
        "tenant": shop["tenant"].pk,
        "name": "Ann Admin",
        "email": "ann@acme.test",
        "phone": "",
        "account_number": "",
        "service_address": "",
        "notes": "",
        "plan": shop["plan"].pk,
        "activity-TOTAL_FORMS": "0",
        "activity-INITIAL_FORMS": "0",
    }
    assert client.post(url, form).status_code == 302
    [entry] = history(ann)
    assert (entry.action, entry.actor_name, entry.changes) == (
        "edited",
        "root",
        {"name": ["Ann", "Ann Admin"]},
    )


def test_an_edit_saved_after_a_status_change_keeps_the_status(client, shop):
    """Two staff members: one opens the edit form, the other suspends; the edit changes what it
    edits, not the status loaded when its form was shown."""
    client.force_login(shop["alice"])
    ann = shop["ann"]
    assert client.get(reverse("subscribers:edit", args=[ann.pk])).status_code == 200
    assert post(client, "suspend", ann, {"reason": "unpaid", "confirm": "on"}).status_code == 200
    assert status_of(ann) == "suspended"
    edited = client.post(
        reverse("subscribers:edit", args=[ann.pk]),
        {"name": "Ann Lee", "email": "ann@acme.test", "plan": shop["plan"].pk},
    )
    assert edited.status_code == 302
    ann.refresh_from_db()
    assert (ann.name, ann.status, ann.suspensions) == ("Ann Lee", "suspended", 1)


def test_a_subscriber_suspended_before_its_first_provisioning_is_reinstated_under_its_activation_key(
    client, shop
):
    """Its activation's answer may have been lost after the upstream provisioned it: the same key."""
    client.force_login(shop["alice"])
    api, ann = shop["api"], shop["ann"]
    api.status = 503
    post(client, "activate", ann)
    post(client, "suspend", ann, {"reason": "on hold", "confirm": "on"})
    api.status = 201
    post(client, "reinstate", ann)
    assert status_of(ann) == "active"
    assert {call.key for call in api.calls} == {f"subscriber-acme-{ann.pk}"}


def test_text_staff_type_keeps_no_bidirectional_override(client, shop):
    """An override left open would reorder the rest of every line the name is shown in."""
    client.force_login(shop["alice"])
    created = client.post(
        reverse("subscribers:create"),
        {
            "name": "\u202eevil\u202c name",
            "email": "rlo@acme.test",
            "plan": shop["plan"].pk,
            "notes": "a\u2066b",
        },
    )
    assert created.status_code == 302
    subscriber = Subscriber.objects.get(email="rlo@acme.test")
    assert (subscriber.name, subscriber.notes) == ("evil name", "ab")
