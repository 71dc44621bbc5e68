"""Log lines: one line per record for every splitter, and a bad Host as one WARNING line."""

from __future__ import annotations

import io
import json
import logging
from logging.config import dictConfig

import pytest
from django.conf import settings

from apps.ops.logging import JsonFormatter, TextFormatter

LINE_BREAKS = "\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029"


def record_with(message: str) -> logging.LogRecord:
    return logging.makeLogRecord(
        {"name": "django.request", "levelno": logging.WARNING, "levelname": "WARNING", "msg": message,
         "request_id": "rid", "tenant": "-"}
    )  # fmt: skip


@pytest.mark.parametrize(
    "formatter",
    [JsonFormatter(), TextFormatter("%(levelname)s [%(request_id)s %(tenant)s] %(message)s")],
    ids=["json", "text"],
)
def test_a_path_or_user_agent_with_line_breaks_stays_one_line(formatter):
    message = f"Not Found: /a{LINE_BREAKS}b"
    line = formatter.format(record_with(message))
    assert len(line.splitlines()) == 1, repr(line)
    if isinstance(formatter, JsonFormatter):
        assert json.loads(line)["message"] == message  # escaped, not lost


@pytest.mark.django_db
def test_a_disallowed_host_is_one_warning_line_without_traceback(client):
    stream = io.StringIO()
    config = json.loads(json.dumps(settings.LOGGING))  # the project's logging, writing to a buffer
    config["handlers"]["stdout"]["stream"] = stream
    del config["handlers"]["stdout"]["class"]
    config["handlers"]["stdout"]["()"] = "logging.StreamHandler"
    config["handlers"]["stdout"]["formatter"] = "json"
    dictConfig(config)
    try:
        response = client.get("/accounts/login/", HTTP_HOST="evil.example")
    finally:
        dictConfig(settings.LOGGING)
    assert response.status_code == 400
    [line] = [line for line in stream.getvalue().splitlines() if "DisallowedHost" in line]
    record = json.loads(line)
    assert record["level"] == "WARNING"
    assert "exc_info" not in record
    assert "evil.example" in record["message"]
