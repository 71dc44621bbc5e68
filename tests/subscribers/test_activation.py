"""Activate: a real provisioning upstream behind the ``provisioning`` breaker; never a 500, nothing lost."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from prometheus_client import REGISTRY

from apps.ops import breakers
from apps.subscribers.models import ActivityEntry, Subscriber
from tests.ops.breaker_support import configure, fresh_breakers  # noqa: F401
from tests.upstream import Upstream, upstream_fixture  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_breakers")]

UNAVAILABLE = "Provisioning is temporarily unavailable, try again later."


@pytest.fixture
def shop(settings, upstream, tenant_factory, staff_factory, plan_factory):
    settings.PROVISIONING_API_URL = upstream.url
    configure(settings, "provisioning", fail_max=3, reset_timeout=60, request_timeout=1)
    acme = tenant_factory("acme")
    plan = plan_factory(acme, name="Fibre 500", down=500, up=100)
    alice = staff_factory(acme, "alice")
    ann = Subscriber.objects.create(tenant=acme, name="Ann", email="ann@acme.test", plan=plan)
    return {"tenant": acme, "plan": plan, "alice": alice, "ann": ann, "upstream": upstream}


def activate(client, subscriber):
    """Press Activate and follow the redirect back to the detail page."""
    return client.post(reverse("subscribers:activate", args=[subscriber.pk]), follow=True)


def provisioning_count(outcome: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "dotmac_provisioning_requests_total", {"tenant": "acme", "outcome": outcome}
        )
        or 0
    )


def status_of(subscriber) -> str:
    subscriber.refresh_from_db()
    return subscriber.status


def test_activation_provisions_the_subscriber_and_makes_it_active(client, shop):
    client.force_login(shop["alice"])
    successes = provisioning_count("success")
    shop["upstream"].status = 201
    response = activate(client, shop["ann"])
    assert response.status_code == 200
    assert "Ann is now active." in response.content.decode()
    assert status_of(shop["ann"]) == "active"

    [sent] = shop["upstream"].requests
    assert (sent.method, sent.path) == ("POST", "/subscribers")
    assert sent.json() == {
        "subscriber_id": shop["ann"].pk,
        "tenant": "acme",
        "name": "Ann",
        "email": "ann@acme.test",
        "plan": {"id": shop["plan"].pk, "name": "Fibre 500", "download_mbps": 500, "upload_mbps": 100},
    }
    assert sent.headers["Idempotency-Key"] == f"subscriber-acme-{shop['ann'].pk}"
    assert provisioning_count("success") - successes == 1


def test_upstream_down_keeps_the_subscriber_pending_then_reset_and_recovery_activate_it(client, shop):
    client.force_login(shop["alice"])
    upstream = shop["upstream"]
    upstream.stop()  # connections refused
    for _ in range(3):
        response = activate(client, shop["ann"])
        assert response.status_code == 200
        assert UNAVAILABLE in response.content.decode()
        assert status_of(shop["ann"]) == "pending"
    assert breakers.breaker_status("provisioning").state == "open"

    # The upstream is back, but the breaker is open: still a friendly page, and no request is sent.
    upstream.start()
    rejected = provisioning_count("rejected")
    response = activate(client, shop["ann"])
    assert response.status_code == 200 and UNAVAILABLE in response.content.decode()
    assert upstream.request_count == 0
    assert provisioning_count("rejected") - rejected == 1
    assert "Activate</button>" in response.content.decode()  # still offered

    breakers.reset_breaker("provisioning", reason="upstream repaired")
    response = activate(client, shop["ann"])
    assert "Ann is now active." in response.content.decode()
    assert status_of(shop["ann"]) == "active"
    assert upstream.request_count == 1


@pytest.mark.parametrize(("status", "delay"), [(500, 0), (503, 0), (200, 1.5)])
def test_5xx_and_timeouts_keep_the_subscriber_pending(client, shop, status, delay):
    client.force_login(shop["alice"])
    shop["upstream"].status, shop["upstream"].delay = status, delay
    response = activate(client, shop["ann"])
    assert response.status_code == 200 and UNAVAILABLE in response.content.decode()
    assert status_of(shop["ann"]) == "pending"
    assert breakers.breaker_status("provisioning").failure_count == 1


def test_a_refusal_4xx_keeps_pending_says_why_and_does_not_open_the_breaker(client, shop):
    client.force_login(shop["alice"])
    shop["upstream"].status = 422
    for _ in range(4):
        response = activate(client, shop["ann"])
        assert response.status_code == 200
        assert "Provisioning refused the request (HTTP 422)" in response.content.decode()
    assert status_of(shop["ann"]) == "pending"
    assert breakers.breaker_status("provisioning").state == "closed"


def test_without_a_provisioning_url_the_page_says_so_in_the_staffs_words(client, shop, settings):
    settings.PROVISIONING_API_URL = ""
    client.force_login(shop["alice"])
    response = activate(client, shop["ann"])
    assert response.status_code == 200
    page = response.content.decode()
    assert (
        "Provisioning is not set up for this ISP yet — ask your platform administrator. "
        "The subscriber stays pending." in page
    )
    assert "PROVISIONING_API_URL" not in page
    assert status_of(shop["ann"]) == "pending"


def test_the_activate_button_is_shown_for_pending_subscribers_only(client, shop):
    client.force_login(shop["alice"])
    url = reverse("subscribers:detail", args=[shop["ann"].pk])
    action = reverse("subscribers:activate", args=[shop["ann"].pk])
    assert f'action="{action}"' in client.get(url).content.decode()
    Subscriber.objects.filter(pk=shop["ann"].pk).update(status="active")
    assert f'action="{action}"' not in client.get(url).content.decode()


def test_only_pending_subscribers_are_activated(client, shop):
    client.force_login(shop["alice"])
    Subscriber.objects.filter(pk=shop["ann"].pk).update(status="suspended")
    response = activate(client, shop["ann"])
    assert "Only pending subscribers can be activated" in response.content.decode()
    assert status_of(shop["ann"]) == "suspended"
    assert shop["upstream"].request_count == 0


def test_activation_is_post_only_and_tenant_scoped(client, shop, tenant_factory, staff_factory):
    client.force_login(shop["alice"])
    url = reverse("subscribers:activate", args=[shop["ann"].pk])
    assert client.get(url).status_code == 405
    bob = staff_factory(tenant_factory("globex"), "bob")
    client.force_login(bob)
    assert client.post(url).status_code == 404
    assert status_of(shop["ann"]) == "pending"
    assert shop["upstream"].request_count == 0


def test_the_command_retries_pending_activations(shop, capsys):
    tenant, plan, upstream = shop["tenant"], shop["plan"], shop["upstream"]
    bea = Subscriber.objects.create(tenant=tenant, name="Bea", email="bea@acme.test", plan=plan)
    upstream.status = 503
    with pytest.raises(CommandError, match="0 activated, 0 refused; stopped: Provisioning is temporarily"):
        call_command("activate_pending")
    assert {status_of(shop["ann"]), status_of(bea)} == {"pending"}

    upstream.status = 200
    call_command("activate_pending")
    assert "2 activated, 0 refused" in capsys.readouterr().out
    assert {status_of(shop["ann"]), status_of(bea)} == {"active"}
    call_command("activate_pending")  # nothing left to do
    assert "0 activated, 0 refused" in capsys.readouterr().out


def test_the_command_stops_at_an_open_breaker_without_calling_the_upstream(shop):
    upstream = shop["upstream"]
    upstream.status = 500
    for _ in range(3):
        with pytest.raises(CommandError):
            call_command("activate_pending")
    assert breakers.breaker_status("provisioning").state == "open"
    upstream.status = 200
    seen = upstream.request_count
    with pytest.raises(CommandError, match="stopped"):
        call_command("activate_pending")
    assert upstream.request_count == seen
    assert status_of(shop["ann"]) == "pending"


def test_a_refusal_whose_text_holds_control_characters_is_recorded_without_them(
    client, tenant_factory, staff_factory, plan_factory, settings
):
    """A NUL byte reaching PostgreSQL would fail the request; the text is shown isolated, on one line."""
    upstream = Upstream(status=422, body=b'{"error": "bad\\u0000plan"}\x00\n\xe2\x80\xaeend').start()
    try:
        settings.PROVISIONING_API_URL = upstream.url
        acme = tenant_factory("acme")
        client.force_login(staff_factory(acme, "alice"))
        ann = Subscriber.objects.create(
            tenant=acme, name="Ann", email="ann@acme.test", plan=plan_factory(acme)
        )
        answer = client.post(reverse("subscribers:activate", args=[ann.pk]))
        assert answer.status_code == 302
        [entry] = ActivityEntry.objects.filter(subscriber=ann, action=ActivityEntry.Action.ACTIVATION)
        assert entry.outcome == ActivityEntry.Outcome.REFUSED and entry.upstream_status == 422
        assert entry.error == '{"error": "bad\\u0000plan"}   end'
        assert "<bdi>" in client.get(reverse("subscribers:detail", args=[ann.pk])).content.decode()
    finally:
        upstream.stop()
