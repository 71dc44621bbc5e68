"""The handler500 of the root URLconf: a database outage answers 503, anything else 500."""

from __future__ import annotations

import json

import psycopg
import pytest
from django.db import OperationalError
from django.test import RequestFactory

from apps.ops.errors import server_error


def answer(exc: BaseException, path: str = "/subscribers/", **headers: str):
    request = RequestFactory().get(path, **headers)
    try:
        raise exc
    except BaseException:  # Django calls the handler inside the except block of what was raised
        return server_error(request)


def database_error(sqlstate_error: Exception | None) -> OperationalError:
    error = OperationalError("connection failed")
    error.__cause__ = sqlstate_error
    return error


def test_an_unreachable_database_answers_503_with_retry_after_and_a_page():
    response = answer(database_error(psycopg.OperationalError("connection refused")))
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert b"temporarily unavailable" in response.content


def test_an_unreachable_database_answers_json_to_api_clients():
    response = answer(database_error(None), path="/api/v1/circuit-breakers/status")
    assert response.status_code == 503
    assert "temporarily unavailable" in json.loads(response.content)["error"]


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("a bug"),
        database_error(psycopg.errors.QueryCanceled("canceling statement due to statement timeout")),
    ],
    ids=["bug", "statement-timeout"],
)
def test_other_errors_stay_500(exc):
    assert answer(exc).status_code == 500
