"""The "Circuit breakers" admin page: live state, resets (audited), configuration overrides."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client

from apps.ops import breakers
from apps.ops.models import BreakerConfigOverride, BreakerResetAudit
from tests.ops.breaker_support import configure, trip

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_breakers")]

PAGE = "/admin/ops/circuitbreaker/"


def permission(codename: str) -> Permission:
    return Permission.objects.get(content_type__app_label="ops", codename=codename)


@pytest.fixture
def open_breaker(settings):
    configure(settings, "admin-open", fail_max=2, reset_timeout=45)
    configure(settings, "admin-closed")
    trip("admin-open")
    return "admin-open"


@pytest.fixture
def ops_staff(django_user_model):
    user = django_user_model.objects.create_user("ops-staff", password="pw-123456", is_staff=True)
    user.user_permissions.add(permission("reset_circuitbreaker"))
    return user


def logged_in(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def test_the_page_shows_live_state_in_colour_failure_count_and_config(open_breaker, ops_staff):
    response = logged_in(ops_staff).get(PAGE)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Circuit breakers" in html
    assert '<tr data-breaker="admin-open">' in html and '<tr data-breaker="admin-closed">' in html
    assert '<span class="breaker-state open" data-field="state">open</span>' in html
    assert '<span class="breaker-state closed" data-field="state">closed</span>' in html
    assert '<span data-field="failure_count">2</span> / 2' in html
    assert "45.0 s" in html  # its recovery timeout
    # The colours are a stylesheet of their own: the Content-Security-Policy allows no inline style.
    assert 'href="/static/ops/breakers.css"' in html
    colours = Path(finders.find("ops/breakers.css")).read_text()
    assert ".breaker-state.open { background: #c62828; }" in colours
    assert "Reset selected" in html and "Reset all" in html


def test_the_admin_index_lists_the_page_only_for_staff_with_the_permission(
    open_breaker, ops_staff, django_user_model
):
    assert PAGE in logged_in(ops_staff).get("/admin/").content.decode()
    other = django_user_model.objects.create_user("other-staff", password="pw-123456", is_staff=True)
    assert PAGE not in logged_in(other).get("/admin/").content.decode()


def test_staff_without_the_permission_get_403(open_breaker, django_user_model):
    user = django_user_model.objects.create_user("other-staff", password="pw-123456", is_staff=True)
    client = logged_in(user)
    assert client.get(PAGE).status_code == 403
    assert client.post(PAGE, {"reset_all": "1"}).status_code == 403
    assert breakers.breaker_status("admin-open").state == "open"


def test_non_staff_are_sent_to_the_admin_login(open_breaker, django_user_model):
    user = django_user_model.objects.create_user("member", password="pw-123456")
    user.user_permissions.add(permission("reset_circuitbreaker"))
    response = logged_in(user).get(PAGE)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_staff_reset_an_open_breaker_from_the_page_and_the_reset_is_audited(open_breaker, ops_staff):
    client = logged_in(ops_staff)
    response = client.post(PAGE, {"names": ["admin-open"], "reset_selected": "1"}, follow=True)
    assert response.status_code == 200
    assert "Reset: admin-open." in response.content.decode()
    assert breakers.breaker_status("admin-open").state == "closed"

    audit = BreakerResetAudit.objects.get()
    assert (audit.breaker, audit.user, audit.actor, audit.via) == (
        "admin-open",
        ops_staff,
        "ops-staff",
        "admin",
    )
    assert (audit.state_before, audit.failure_count_before) == ("open", 2)
    # The audit is visible on the page and in its own read-only list.
    assert (
        "<td>admin-open</td><td>ops-staff</td>\n          <td>Admin</td><td>open</td>"
        in response.content.decode()
    )
    audit_list = client.get("/admin/ops/breakerresetaudit/")
    assert audit_list.status_code == 200 and "admin-open" in audit_list.content.decode()
    assert client.get("/admin/ops/breakerresetaudit/add/").status_code == 403


def test_reset_all_from_the_page(open_breaker, ops_staff):
    trip("admin-closed")
    response = logged_in(ops_staff).post(PAGE, {"reset_all": "1"}, follow=True)
    assert "Reset all 2 circuit breakers." in response.content.decode()
    assert {s.state for s in breakers.all_statuses()} == {"closed"}
    assert BreakerResetAudit.objects.filter(via="admin").count() == 2


def test_reset_selected_with_nothing_or_an_unknown_name_explains_itself(open_breaker, ops_staff):
    client = logged_in(ops_staff)
    assert "Select at least one" in client.post(PAGE, {"reset_selected": "1"}, follow=True).content.decode()
    response = client.post(PAGE, {"names": ["forged/../name"], "reset_selected": "1"}, follow=True)
    assert response.status_code == 200
    assert "Unknown circuit breakers: forged/../name." in response.content.decode()
    assert breakers.breaker_status("admin-open").state == "open"


def test_the_page_enforces_csrf(open_breaker, ops_staff):
    client = logged_in(ops_staff, enforce_csrf_checks=True)
    assert client.post(PAGE, {"reset_all": "1"}).status_code == 403
    assert breakers.breaker_status("admin-open").state == "open"


def test_staff_edit_a_breakers_config_and_it_applies_without_restart(open_breaker, ops_staff):
    for codename in (
        "add_breakerconfigoverride",
        "change_breakerconfigoverride",
        "view_breakerconfigoverride",
    ):
        ops_staff.user_permissions.add(permission(codename))
    client = logged_in(ops_staff)
    assert breakers.get_breaker("admin-closed").fail_max == 5
    form = client.get("/admin/ops/breakerconfigoverride/add/?name=admin-closed").content.decode()
    assert 'value="admin-closed"' in form  # prefilled from the page's "override…" link
    response = client.post(
        "/admin/ops/breakerconfigoverride/add/",
        {
            "name": "admin-closed",
            "fail_max": "2",
            "reset_timeout": "7.5",
            "success_threshold": "",
            "request_timeout": "",
        },
    )
    assert response.status_code == 302, response.content.decode()
    override = BreakerConfigOverride.objects.get(name="admin-closed")
    assert override.updated_by == ops_staff
    breaker = breakers.get_breaker("admin-closed")
    assert (breaker.fail_max, breaker.reset_timeout, breaker.success_threshold) == (2, 7.5, 3)
    page = client.get(PAGE).content.decode()
    assert f"/admin/ops/breakerconfigoverride/{override.pk}/change/" in page
    assert "7.5 s" in page


def test_an_invalid_override_is_refused_by_the_form(open_breaker, ops_staff):
    ops_staff.user_permissions.add(permission("add_breakerconfigoverride"))
    response = logged_in(ops_staff).post(
        "/admin/ops/breakerconfigoverride/add/", {"name": "Bad/Name", "fail_max": "0", "reset_timeout": "-1"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "invalid circuit breaker name" in html
    assert "Ensure this value is greater than or equal to 1." in html
    assert not BreakerConfigOverride.objects.exists()


def test_the_table_less_admin_model_does_not_break_dumpdata(open_breaker, ops_staff):
    BreakerConfigOverride.objects.create(name="admin-closed", fail_max=4)
    out = StringIO()
    call_command("dumpdata", "ops", stdout=out)
    assert '"model": "ops.breakerconfigoverride"' in out.getvalue()
    assert "ops.circuitbreaker" not in out.getvalue()
