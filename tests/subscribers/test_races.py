"""Double-clicks on PostgreSQL: identical form posts racing each other get the form's answer, never a 500."""

from __future__ import annotations

import http.client
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

import pytest
from django.test import Client

from apps.subscribers.forms import DUPLICATE_ACCOUNT, DUPLICATE_EMAIL
from apps.subscribers.models import Subscriber

pytestmark = pytest.mark.django_db(transaction=True)

CLICKS = 8
_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class Staff:
    """A logged-in browser of one staff member, talking HTTP to the live server."""

    def __init__(self, live_server, user) -> None:
        self.port = urlsplit(live_server.url).port
        client = Client()
        client.force_login(user)
        self.cookies = {"sessionid": client.cookies["sessionid"].value}
        page = self.request("GET", "/subscribers/new/")
        self.token = _CSRF_INPUT.search(page[1]).group(1)

    def request(self, method: str, path: str, form: dict | None = None) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urlencode({**form, "csrfmiddlewaretoken": self.token})
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            for header in response.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(header).items():
                    self.cookies[name] = morsel.value
            return response.status, response.read().decode()
        finally:
            connection.close()


def double_click(staff: Staff, path: str, form: dict) -> list[tuple[int, str]]:
    """``CLICKS`` identical posts released at the same moment."""
    start = threading.Barrier(CLICKS)

    def click(_):
        start.wait(timeout=30)
        return staff.request("POST", path, form)

    with ThreadPoolExecutor(CLICKS) as pool:
        return list(pool.map(click, range(CLICKS)))


@pytest.fixture
def acme(tenant_factory, staff_factory, plan_factory):
    tenant = tenant_factory("acme")
    return tenant, staff_factory(tenant, "alice"), plan_factory(tenant)


def test_identical_creates_at_once_make_one_subscriber_and_the_others_get_the_duplicate_error(
    live_server, acme
):
    tenant, alice, plan = acme
    staff = Staff(live_server, alice)
    for round_ in range(3):
        email = f"race{round_}@acme.test"
        answers = double_click(staff, "/subscribers/new/", {"name": "Race", "email": email, "plan": plan.pk})
        statuses = sorted(status for status, _ in answers)
        assert statuses == [200] * (CLICKS - 1) + [302], statuses
        assert all(DUPLICATE_EMAIL in body for status, body in answers if status == 200)
        assert Subscriber.objects.filter(tenant=tenant, email=email).count() == 1


def test_edits_racing_to_the_same_email_leave_one_subscriber_with_it(live_server, acme):
    tenant, alice, plan = acme
    staff = Staff(live_server, alice)
    for round_ in range(3):
        email = f"taken{round_}@acme.test"
        subscribers = [
            Subscriber.objects.create(tenant=tenant, name=f"S{n}", email=f"{round_}-{n}@acme.test", plan=plan)
            for n in range(CLICKS)
        ]
        start = threading.Barrier(CLICKS)

        def edit(subscriber):
            start.wait(timeout=30)
            form = {"name": subscriber.name, "email": email, "plan": plan.pk}
            return staff.request("POST", f"/subscribers/{subscriber.pk}/edit/", form)

        with ThreadPoolExecutor(CLICKS) as pool:
            answers = list(pool.map(edit, subscribers))
        statuses = sorted(status for status, _ in answers)
        assert statuses == [200] * (CLICKS - 1) + [302], statuses
        assert all(DUPLICATE_EMAIL in body for status, body in answers if status == 200)
        assert Subscriber.objects.filter(tenant=tenant, email=email).count() == 1


def test_creates_racing_to_the_same_account_number_make_one_subscriber_with_it(live_server, acme):
    tenant, alice, plan = acme
    staff = Staff(live_server, alice)
    start = threading.Barrier(CLICKS)

    def create(n):
        start.wait(timeout=30)
        form = {"name": f"S{n}", "email": f"acct{n}@acme.test", "plan": plan.pk, "account_number": "A-1001"}
        return staff.request("POST", "/subscribers/new/", form)

    with ThreadPoolExecutor(CLICKS) as pool:
        answers = list(pool.map(create, range(CLICKS)))
    statuses = sorted(status for status, _ in answers)
    assert statuses == [200] * (CLICKS - 1) + [302], statuses
    assert all(DUPLICATE_ACCOUNT in body for status, body in answers if status == 200)
    assert Subscriber.objects.filter(tenant=tenant, account_number="A-1001").count() == 1
