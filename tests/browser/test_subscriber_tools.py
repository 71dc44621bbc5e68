"""A tenant's staff in a real browser (``staff_site.py``): a subscriber's whole lifecycle with its
confirmations, reasons and history; the list's filter, sort and CSV export; a bulk retry of pending
subscribers against the test provisioning API."""

from __future__ import annotations

import csv
import io

import pytest

from tests.browser.staff_site import TENANT_STAFF, create_subscriber, log_in, playwright_api, submit

pytestmark = [
    pytest.mark.browser,
    pytest.mark.servers,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def other_isp(people, tenant_factory, plan_factory):
    """A subscriber of another ISP, which no page, export or bulk action of this one may show."""
    from apps.subscribers.models import Subscriber

    other = tenant_factory("southwind")
    return Subscriber.objects.create(
        tenant=other, name="Otto Other", email="otto@southwind.example", plan=plan_factory(other)
    )


def rows(page) -> list[str]:
    """The subscribers' names on the list page, top to bottom (once the list page is there)."""
    playwright_api().expect(page.get_by_role("heading", name="Subscribers", exact=True)).to_be_visible()
    return page.locator("tbody tr td:nth-child(2) a").all_inner_texts()


def confirm(page, verb: str, name: str, reason: str) -> None:
    """Open the confirmation of ``verb`` (Suspend, Terminate) from a subscriber's page and confirm."""
    page.get_by_role("link", name=f"{verb}…").click()
    page.get_by_label("Reason").fill(reason)
    page.get_by_label(f"Yes, {verb.lower()} {name}").check()
    submit(page, verb)


def test_a_subscriber_from_creation_to_termination_with_reasons_and_history(site, open_browser):
    expect = playwright_api().expect
    status = ".heading .status"
    staff = open_browser("tenant-staff")
    log_in(staff, site, "/subscribers/", *TENANT_STAFF)
    name = "Grace Hopper"
    create_subscriber(staff, name, "grace@example.net", "Fibre 1000")

    submit(staff, "Activate")
    expect(staff.locator(status)).to_have_text("Active")
    # Suspending asks first: without the reason and the tick the form is not sent.
    staff.get_by_role("link", name="Suspend…").click()
    staff.get_by_role("button", name="Suspend").click()
    expect(staff.get_by_label("Reason")).to_be_visible()
    assert staff.get_by_label("Reason").evaluate("field => field.validity.valueMissing")
    staff.go_back()
    expect(staff.locator(status)).to_have_text("Active")
    confirm(staff, "Suspend", name, "Invoice 2026-11 unpaid")
    expect(staff.locator(status)).to_have_text("Suspended")

    submit(staff, "Reinstate")
    expect(staff.locator(status)).to_have_text("Active")
    confirm(staff, "Terminate", name, "Moved out of the service area")
    expect(staff.locator(status)).to_have_text("Terminated")
    expect(staff.get_by_role("button", name="Activate")).to_have_count(0)
    expect(staff.get_by_role("link", name="Suspend…")).to_have_count(0)

    history = staff.locator(".history li")
    for text in (
        "Terminated",
        "Moved out of the service area",
        "Reinstatement",
        "Suspended",
        "Invoice 2026-11 unpaid",
        "Activation",
        "Created",
    ):
        expect(history.filter(has_text=text).first).to_be_visible()
    expect(history.first).to_contain_text("Terminated")  # newest first
    expect(history.first).to_contain_text(TENANT_STAFF[0])
    # Provisioning was asked twice, the reinstatement under its own idempotency key.
    keys = [request.headers.get("Idempotency-Key") for request in site.upstream.requests]
    assert len(keys) == 2 and len(set(keys)) == 2 and all(keys), keys

    # Terminated: out of the default list, under its own filter.
    staff.get_by_role("link", name="Subscribers").first.click()
    assert name not in rows(staff)
    staff.get_by_label("Status").select_option("terminated")
    submit(staff, "Filter")
    assert rows(staff) == [name]


def test_filter_sort_and_export_the_list(site, other_isp, open_browser):
    expect = playwright_api().expect
    staff = open_browser("tenant-staff")
    log_in(staff, site, "/subscribers/", *TENANT_STAFF)
    staff.get_by_label("Status").select_option("active")
    submit(staff, "Filter")
    active = ["Amara Okafor", "Ingrid Svensson", "Tomás Herrera"]
    assert sorted(rows(staff)) == active
    with staff.expect_navigation():
        staff.get_by_role("link", name="Name", exact=True).click()
    assert rows(staff) == active
    with staff.expect_navigation():
        staff.get_by_role("link", name="Name", exact=True).click()
    assert rows(staff) == active[::-1]
    expect(staff.get_by_label("Status")).to_have_value("active")  # the sort keeps the filter

    with staff.expect_download() as download:
        staff.get_by_role("link", name="Export CSV").click()
    exported = list(csv.DictReader(io.StringIO(open(download.value.path(), encoding="utf-8-sig").read())))
    assert sorted(row["Name"] for row in exported) == active
    assert {row["Status"] for row in exported} == {"active"}
    assert other_isp.name not in {row["Name"] for row in exported}


def test_bulk_retry_activates_the_pending_subscribers(site, open_browser):
    expect = playwright_api().expect
    staff = open_browser("tenant-staff")
    log_in(staff, site, "/subscribers/", *TENANT_STAFF)
    pending = ["Katherine Johnson", "Dorothy Vaughan"]
    for name in pending:
        create_subscriber(staff, name, f"{name.split()[0].lower()}@example.net", "Fibre 300")
    staff.get_by_role("link", name="Subscribers").first.click()
    staff.get_by_label("Status").select_option("pending")
    submit(staff, "Filter")
    assert sorted(rows(staff)) == sorted(pending)

    for name in pending:
        staff.get_by_label(f"Select {name}").check()
    staff.get_by_label("With the selected").select_option(label="Retry activation (pending ones)")
    submit(staff, "Apply to selected")
    expect(staff.get_by_role("heading")).to_contain_text("2 subscribers")
    staff.get_by_label("Yes, retry activation for these 2 subscribers").check()
    submit(staff, "Retry activation")

    assert sorted(request.json()["name"] for request in site.upstream.requests) == sorted(pending)
    staff.get_by_label("Status").select_option("active")
    submit(staff, "Filter")
    for name in pending:
        assert name in rows(staff)
