"""Settings from the environment: production refuses unsafe configuration, deploy checks pass."""

import json
import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from dotmac.settings.env import database_from_url
from tests.conftest import PROJECT_DIR

STRONG_KEY = "k3y-" + "Zx9!qW2@eR4#tY6%uI8^oP0&aS1*dF3(gH5)jK7_lL9" * 2
PRODUCTION_ENV = {
    "DJANGO_ENV": "production",
    "DJANGO_SECRET_KEY": STRONG_KEY,
    "ALLOWED_HOSTS": "platform.example.com",
    "DJANGO_SETTINGS_MODULE": "dotmac.settings",
}


def _manage(env: dict, *args: str) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_DIR), "DATA_DIR": "/tmp/dotmac-settings-test"}
    return subprocess.run(
        [sys.executable, str(PROJECT_DIR / "manage.py"), *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_DIR,
    )


def test_production_refuses_to_start_without_secret_key():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "DJANGO_SECRET_KEY"}
    result = _manage(env, "check")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is required" in result.stderr


def test_production_passes_deploy_checks_with_zero_warnings():
    result = _manage(PRODUCTION_ENV, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_development_runs_without_any_configuration():
    result = _manage({}, "check")
    assert result.returncode == 0, result.stderr


def test_production_logs_are_json_lines_with_request_context():
    code = (
        "import logging; from apps.ops import context;"
        "context.request_id.set('req-123');"
        "logging.getLogger('dotmac.test').info('hello %s', 'world', extra={'answer': 42})"
    )
    result = _manage(PRODUCTION_ENV, "shell", "--no-imports", "-c", code)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    record = json.loads(lines[-1])
    assert record["message"] == "hello world"
    assert record["level"] == "INFO"
    assert record["request_id"] == "req-123"
    assert record["tenant"] == "-"
    assert record["answer"] == 42
    assert all(line.startswith("{") for line in lines)


@pytest.mark.django_db
def test_request_log_line_carries_request_id_and_tenant(client, tenant_factory, staff_factory, plan_factory):
    import io
    import logging

    from apps.ops.logging import JsonFormatter, RequestContextFilter

    acme = tenant_factory("acme")
    plan = plan_factory(acme)
    client.force_login(staff_factory(acme, "alice"))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestContextFilter())
    logger = logging.getLogger("apps.subscribers")
    logger.addHandler(handler)
    try:
        client.post(
            "/subscribers/new/",
            {"name": "Log Me", "email": "log@acme.test", "plan": plan.pk},
            HTTP_X_REQUEST_ID="trace-abc",
        )
    finally:
        logger.removeHandler(handler)
    record = json.loads(stream.getvalue().splitlines()[-1])
    assert record["message"] == "subscriber created"
    assert record["request_id"] == "trace-abc"
    assert record["tenant"] == "acme"


@pytest.mark.django_db
def test_hostile_request_id_is_replaced(client):
    response = client.get("/accounts/login/", HTTP_X_REQUEST_ID="bad id\r\nSet-Cookie: x=1")
    assert response.status_code == 200
    rid = response["X-Request-ID"]
    assert len(rid) == 32 and rid.isalnum()


@pytest.mark.django_db
def test_generated_request_ids_differ_between_requests_and_between_forked_workers(client):
    ids = {client.get("/accounts/login/")["X-Request-ID"] for _ in range(50)}
    assert len(ids) == 50
    # gunicorn forks its workers from one master: each must draw different ids. (The middleware
    # alone here: a forked child must not touch the database connection it shares.)
    from django.http import HttpResponse
    from django.test import RequestFactory

    from apps.ops.logging import RequestIdMiddleware

    def next_id() -> str:
        return RequestIdMiddleware(lambda request: HttpResponse())(RequestFactory().get("/"))["X-Request-ID"]

    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the child writes the id of its next request and leaves at once
        try:
            os.write(write_end, next_id().encode())
        finally:
            os._exit(0)
    os.close(write_end)
    parent_id = next_id()
    os.waitpid(child, 0)
    with os.fdopen(read_end, "rb") as pipe:
        child_id = pipe.read().decode()
    assert len(child_id) == 32 and child_id != parent_id


def test_database_url_parsing():
    pg = database_from_url(
        "postgres://u%40x:p%2Fw@db.internal:6432/dotmac?sslmode=require",
        pool=True,
        pool_max_size=4,
        connect_timeout=3,
    )
    assert pg["ENGINE"] == "apps.ops.metrics.db.postgresql"
    assert (pg["USER"], pg["PASSWORD"], pg["HOST"], pg["PORT"], pg["NAME"]) == (
        "u@x",
        "p/w",
        "db.internal",
        "6432",
        "dotmac",
    )
    assert pg["OPTIONS"]["sslmode"] == "require"
    assert pg["OPTIONS"]["pool"]["max_size"] == 4
    persistent = database_from_url("postgresql://u:p@h/db", pool=False, pool_max_size=4, connect_timeout=3)
    assert "pool" not in persistent["OPTIONS"] and persistent["CONN_MAX_AGE"] > 0
    sqlite = database_from_url(
        "sqlite:////var/lib/dotmac/db.sqlite3", pool=True, pool_max_size=4, connect_timeout=3
    )
    assert sqlite == {"ENGINE": "apps.ops.metrics.db.sqlite3", "NAME": "/var/lib/dotmac/db.sqlite3"}
    for bad in ["mysql://x/y", "postgres://h/", "sqlite:///"]:
        with pytest.raises(ImproperlyConfigured):
            database_from_url(bad, pool=True, pool_max_size=4, connect_timeout=3)
