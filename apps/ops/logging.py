"""Log records as JSON lines (production) with the request id and tenant of the current request."""

from __future__ import annotations

import json
import logging
import random
import re
from datetime import UTC, datetime

from . import context

# An upstream request id is kept only when it is short and plain; anything else gets a fresh one.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
# Characters some log splitters take for a line end (str.splitlines() does): escaped, so that a path
# or a User-Agent cannot split one record into two lines, or forge a second one.
_LINE_BREAKS = str.maketrans({c: f"\\u{ord(c):04x}" for c in "\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029"})


class RequestContextFilter(logging.Filter):
    """Adds ``request_id`` and ``tenant`` to every record (``-`` when unknown)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = context.request_id.get() or "-"
        if not hasattr(record, "tenant"):
            try:
                record.tenant = context.current_tenant_slug() or "-"
            except Exception:  # logging must never fail because of a lookup
                record.tenant = "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, tenant, extras."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        # JSON escapes the ASCII control characters itself, not the line breaks beyond ASCII.
        return json.dumps(payload, default=str, ensure_ascii=False).translate(_LINE_BREAKS)


class TextFormatter(logging.Formatter):
    """The development format, one line per record but for a traceback."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return super().formatMessage(record).translate(_LINE_BREAKS)


class OneLineWarning(logging.Filter):
    """Turns a record into a WARNING without its traceback (Django logs a bad Host at ERROR with one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = record.exc_text = None
        return True


class RequestIdMiddleware:
    """Gives each request an id (kept from a sane ``X-Request-ID``) for logs and the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        # The process's pseudo-random generator (reseeded in every forked worker): an id guards nothing,
        # and uuid4()'s system call lets go of the GIL, about 20 µs per request on a busy worker.
        rid = incoming if _VALID_REQUEST_ID.match(incoming) else f"{random.getrandbits(128):032x}"
        token = context.request_id.set(rid)
        try:
            response = self.get_response(request)
        finally:
            context.request_id.reset(token)
        response["X-Request-ID"] = rid
        return response
