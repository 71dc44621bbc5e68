"""Staff in a real browser (``staff_site.py``): a tenant's staff activate subscribers while
provisioning fails, and a platform operator resets the open breaker in the admin."""

from __future__ import annotations

import pytest

from tests.browser.staff_site import (
    BREAKER,
    EXISTING_SUBSCRIBERS,
    PHONE,
    PLATFORM_STAFF,
    TENANT,
    TENANT_STAFF,
    create_subscriber,
    log_in,
    playwright_api,
    screenshot,
    submit,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.servers,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


def test_staff_activate_subscribers_and_an_operator_resets_the_open_breaker(site, open_browser):
    expect = playwright_api().expect
    unavailable = "Provisioning is temporarily unavailable, try again later. The subscriber stays pending."

    # --- A tenant's staff member: log in, create a subscriber, activate it (provisioning up).
    staff = open_browser("tenant-staff")
    log_in(staff, site, "/subscribers/", *TENANT_STAFF)
    expect(staff.get_by_role("heading", name="Subscribers")).to_be_visible()
    expect(staff.locator(".topbar .tenant")).to_have_text(TENANT[1])

    create_subscriber(staff, "Rosalind Franklin", "rosalind@example.net", "Fibre 1000")
    submit(staff, "Activate")
    expect(staff.locator(".messages")).to_contain_text("Rosalind Franklin is now active.")
    expect(staff.locator(".heading .status")).to_have_text("Active")
    expect(staff.get_by_role("button", name="Activate")).to_have_count(0)
    [provisioned] = site.upstream.requests
    assert provisioned.path == "/subscribers"
    assert provisioned.json()["email"] == "rosalind@example.net"

    # --- Another one with the provisioning API down: a friendly message, the subscriber stays pending.
    create_subscriber(staff, "Chien-Shiung Wu", "chien-shiung@example.net", "Fibre 300")
    # Down: new connections are refused; a connection the app kept alive gets 503s from what is left.
    site.upstream.status = 503
    site.upstream.stop()
    submit(staff, "Activate")
    expect(staff.locator(".messages")).to_have_text(
        f"Warning: {unavailable}"
    )  # the word is for screen readers
    expect(staff.locator(".heading .status")).to_have_text("Pending")
    # Trying again while it is down: each failure counts, until the breaker opens.
    clicks = 1
    while site.breaker().get("state") != "open":
        assert clicks < site.breaker()["fail_max"], f"the breaker did not open: {site.breaker()}"
        submit(staff, "Activate")
        clicks += 1
        expect(staff.locator(".messages")).to_have_text(
            f"Warning: {unavailable}"
        )  # the word is for screen readers
        expect(staff.locator(".heading .status")).to_have_text("Pending")
    assert clicks == site.breaker()["fail_max"]

    staff.get_by_role("link", name="Subscribers").click()
    rows = staff.locator("tbody tr")
    expect(rows).to_have_count(len(EXISTING_SUBSCRIBERS) + 2)
    expect(rows.filter(has_text="Rosalind Franklin").locator(".status")).to_have_text("Active")
    expect(rows.filter(has_text="Chien-Shiung Wu").locator(".status")).to_have_text("Pending")
    screenshot(staff, "subscriber-list")

    # --- A platform operator: the admin's circuit breaker page shows it open; reset it.
    operator = open_browser("platform-staff")
    log_in(operator, site, "/admin/ops/circuitbreaker/", *PLATFORM_STAFF)
    expect(operator.get_by_role("heading", name="Circuit breakers")).to_be_visible()
    row = operator.locator(f'#breakers tr[data-breaker="{BREAKER}"]')
    expect(row.locator('[data-field="state"]')).to_have_text("open")
    expect(operator.locator("#breaker-audit tbody")).to_contain_text("No reset yet.")
    screenshot(operator, "circuit-breakers-open")

    select_all = operator.locator("#select-all")  # the page's script, a file the policy allows
    select_all.check()
    expect(row.get_by_role("checkbox")).to_be_checked()
    select_all.uncheck()
    row.get_by_role("checkbox").check()
    submit(operator, "Reset selected")
    expect(operator.locator(".messagelist")).to_contain_text(f"Reset: {BREAKER}.")
    expect(row.locator('[data-field="state"]')).to_have_text("closed")
    expect(row.locator('[data-field="failure_count"]')).to_have_text("0")
    audit = operator.locator("#breaker-audit tbody tr").first
    for cell, text in enumerate([None, BREAKER, PLATFORM_STAFF[0], "Admin", "open"]):
        if text is not None:
            expect(audit.locator("td").nth(cell)).to_have_text(text, ignore_case=True)
    screenshot(operator, "circuit-breakers-reset")
    assert site.breaker()["state"] == "closed"
    asked = []
    operator.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    submit(operator, "Reset all")
    assert asked == ["Reset every circuit breaker?"]
    expect(operator.locator(".messagelist")).to_contain_text("Reset all")

    # --- Provisioning is back: the pending subscriber is activated.
    site.upstream.status = 200
    site.upstream.start()
    staff.get_by_role("link", name="Chien-Shiung Wu").click()
    submit(staff, "Activate")
    expect(staff.locator(".messages")).to_contain_text("Chien-Shiung Wu is now active.")
    expect(staff.locator(".heading .status")).to_have_text("Active")
    expect(staff.locator(".history li").first).to_be_visible()  # the attempts, newest first
    screenshot(staff, "subscriber-detail")

    # The README's pictures at a phone's width too.
    staff.set_viewport_size(PHONE)
    screenshot(staff, "subscriber-detail-390")
    staff.get_by_role("link", name="Subscribers").click()
    screenshot(staff, "subscriber-list-390")
    operator.set_viewport_size(PHONE)
    operator.goto(site.url("/admin/ops/circuitbreaker/"))
    screenshot(operator, "circuit-breakers-390")
