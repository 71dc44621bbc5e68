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
# Not fields of a line: the record's own attributes, and the request object Django's request records
# carry, whose repr holds the query string (user-typed search terms stay out of the logs, as out of
# the access log; the message has the path).
_NOT_FIELDS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "request"}
# Characters some log splitters take for a line end (str.splitlines() does): escaped, so that a path
# or a User-Agent cannot split one record into two lines, or forge a second one.
_LINE_BREAKS = str.maketrans({c: f"\\u{ord(c):04x}" for c in "\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029"})


def _fields(record: logging.LogRecord) -> dict:
    return {k: v for k, v in vars(record).items() if k not in _NOT_FIELDS and not k.startswith("_")}


class RequestContextFilter(logging.Filter):
    """Adds ``request_id`` and ``tenant`` to every record (``-`` when unknown)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Django logs a 4xx a view answered after the middleware returned and reset the context: such
        # a record brings its request, which keeps both.
        request = getattr(record, "request", None)
        if not hasattr(record, "request_id"):
            record.request_id = getattr(request, "request_id", None) or context.request_id.get() or "-"
        if not hasattr(record, "tenant"):
            try:
                slug = getattr(getattr(request, "tenant", None), "slug", None)
                record.tenant = slug or context.current_tenant_slug() or "-"
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
        payload.update(_fields(record))
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        # JSON escapes the ASCII control characters itself, not the line breaks beyond ASCII.
        return json.dumps(payload, default=str, ensure_ascii=False).translate(_LINE_BREAKS)


class TextFormatter(logging.Formatter):
    """The development format, one line per record but for a traceback: the format, then the fields a
    JSON line has that it does not show, as ``key=value``."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        for key, value in _fields(record).items():
            if f"%({key})" not in self._fmt:
                line += f" {key}={json.dumps(value, default=str, ensure_ascii=False)}"
        return line.translate(_LINE_BREAKS)


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
        request.request_id = rid
        token = context.request_id.set(rid)
        try:
            response = self.get_response(request)
        finally:
            context.request_id.reset(token)
        response["X-Request-ID"] = rid
        return response
