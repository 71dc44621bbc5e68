"""The site's own pages for errors and its icon: styled, in the staff's words, and never a bare page."""

from __future__ import annotations

import logging

import pytest
from django.test import Client, override_settings


def test_the_icon_has_an_address_browsers_ask_for(client, caplog):
    with caplog.at_level(logging.WARNING):
        answer = client.get("/favicon.ico")
    assert answer.status_code == 301
    assert answer["Location"].endswith(".svg") and "favicon" in answer["Location"]
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


@pytest.mark.django_db
def test_a_missing_page_is_the_sites_own(client):
    answer = client.get("/no-such-page/")
    assert answer.status_code == 404
    assert b"There is nothing here" in answer.content and b"css/app.css" in answer.content


@pytest.mark.django_db
def test_platform_staff_on_a_tenant_page_are_sent_to_the_administration(client, django_user_model):
    operator = django_user_model.objects.create_user("operator", password="x", is_staff=True)
    client.force_login(operator)
    answer = client.get("/subscribers/")
    assert answer.status_code == 403
    assert b"your account belongs to no ISP" in answer.content
    assert b'href="/admin/"' in answer.content


@pytest.mark.django_db
def test_a_form_sent_without_its_csrf_token_gets_a_page_that_says_what_to_do():
    answer = Client(enforce_csrf_checks=True).post("/accounts/login/", {"username": "a", "password": "b"})
    assert answer.status_code == 403
    assert b"This form has expired" in answer.content and b"<style" not in answer.content


@override_settings(ROOT_URLCONF="tests.ops.metrics_urls", DEBUG=False)
def test_a_server_error_page_is_the_sites_own(client):
    client.raise_request_exception = False
    answer = client.get("/explode")
    assert answer.status_code == 500
    assert b"Something went wrong on our side" in answer.content


@pytest.mark.django_db
def test_the_admins_view_site_link_leads_platform_staff_back_to_the_administration(client, django_user_model):
    operator = django_user_model.objects.create_user("operator", password="x", is_staff=True)
    client.force_login(operator)
    page = client.get("/").content.decode()  # where the admin's "View site" points
    assert "Go to the administration" in page and "Go to subscribers" not in page
