"""What every log line of a request carries (its id and tenant) and leaves out (the query string), and
gunicorn's access line in the project's LOG_FORMAT."""

from __future__ import annotations

import http.client
import io
import json
import logging
from logging.config import dictConfig

import pytest
from django.conf import settings

from apps.ops.logging import TextFormatter
from tests.gunicorn import GunicornServer
from tests.servers import subprocess_env, wait_until

SEARCH_TERM = "alice-secret-search"


@pytest.fixture
def log_lines():
    """The project's logging writing JSON lines to a buffer; returns a function giving the records."""
    stream = io.StringIO()
    config = json.loads(json.dumps(settings.LOGGING))
    handler = config["handlers"]["stdout"]
    handler.pop("class")
    handler.update({"()": "logging.StreamHandler", "stream": stream, "formatter": "json"})
    dictConfig(config)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    dictConfig(settings.LOGGING)


@pytest.mark.django_db
def test_a_404_a_view_answers_is_logged_with_the_request_id_and_tenant(
    client, log_lines, tenant_factory, staff_factory
):
    tenant = tenant_factory("acme")
    client.force_login(staff_factory(tenant, "acme-staff"))
    response = client.get("/subscribers/999999/")
    assert response.status_code == 404
    [line] = [r for r in log_lines() if r["logger"] == "django.request"]
    assert line["message"] == "Not Found: /subscribers/999999/"
    assert line["request_id"] == response["X-Request-ID"]
    assert line["tenant"] == "acme"


@pytest.mark.django_db
def test_request_log_lines_leave_the_query_string_out(client, log_lines):
    assert client.get(f"/no-such-page/?q={SEARCH_TERM}").status_code == 404
    assert client.post(f"/api/v1/circuit-breakers/reset-all?q={SEARCH_TERM}").status_code == 401
    lines = [r for r in log_lines() if r["logger"] == "django.request"]
    assert len(lines) == 2
    assert SEARCH_TERM not in json.dumps(lines)


def test_a_text_line_shows_the_fields_of_a_json_line():
    record = logging.makeLogRecord(
        {"name": "gunicorn.access", "levelname": "INFO", "msg": "GET / 200", "request_id": "rid",
         "tenant": "-", "status": 200, "user_agent": "curl/8 (x)", "request": "<WSGIRequest: GET '/?q=a'>"}
    )  # fmt: skip
    line = TextFormatter("%(levelname)s [%(request_id)s %(tenant)s] %(message)s").format(record)
    assert line == 'INFO [rid -] GET / 200 status=200 user_agent="curl/8 (x)"'


@pytest.mark.servers
def test_gunicorn_writes_access_lines_as_text_in_development_and_names_no_version(tmp_path):
    """LOG_FORMAT=text (development's default) governs the access line; the Server header is bare."""
    env = subprocess_env(
        DJANGO_ENV="development",
        DATA_DIR=str(tmp_path / "data"),
        WEB_CONCURRENCY="1",
        TRUSTED_PROXY_COUNT="1",
    )
    server = GunicornServer(env, log_dir=tmp_path).start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        # Through one trusted proxy (an ingress): the line names the client it saw, not the proxy.
        headers = {"User-Agent": "log-policy-test", "X-Forwarded-For": "198.51.100.1, 203.0.113.7"}
        connection.request("GET", f"/?q={SEARCH_TERM}", headers=headers)
        response = connection.getresponse()
        response.read()
        connection.close()
        assert response.status == 200
        assert response.getheader("Server") == "gunicorn"
        wait_until(lambda: "log-policy-test" in server.stdout_text(), timeout=10, message="the access line")
    finally:
        server.stop()
    [line] = [line for line in server.stdout_text().splitlines() if "log-policy-test" in line]
    assert not line.startswith("{"), line
    assert f" INFO gunicorn.access [{response.getheader('X-Request-ID')} -] GET / 200 " in line, line
    fields = ("method=", "path=", "status=200", "bytes=", "duration_ms=", 'remote_addr="203.0.113.7"', "pid=")
    for field in fields:
        assert field in line, (field, line)
    assert SEARCH_TERM not in server.stdout_text()
