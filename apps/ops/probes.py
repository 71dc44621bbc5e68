"""``/live``, ``/ready`` and ``/health``: their paths, ``/live`` in front of the WSGI application, and
:class:`ProbeMiddleware`, the first middleware, which answers all three before host validation, the
SSL redirect, sessions and the rest (docs/ARCHITECTURE.md, "Probes"). GET and HEAD only. ``/live``
never fails, draining included: a restart helps only a process beyond repair, and nothing in the
process can tell that it is.

No Django import at module level: the gunicorn master imports the probe listener, which imports
this module.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

LIVE_PATHS = frozenset({"/live", "/live/"})
_READY_PATHS = frozenset({"/ready", "/ready/"})
PROBE_PATHS = LIVE_PATHS | _READY_PATHS | frozenset({"/health", "/health/"})
ALLOWED_METHODS = ("GET", "HEAD")

_STATUS_LINES = {200: "200 OK", 405: "405 Method Not Allowed"}


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


_LIVE_BODY = _encode({"status": "pass"})
_METHOD_NOT_ALLOWED_BODY = _encode({"error": "method not allowed", "allowed": list(ALLOWED_METHODS)})


def _headers(status: int) -> list[tuple[str, str]]:
    if status == 405:
        return [
            ("Content-Type", "application/json"),
            ("Cache-Control", "no-store"),
            ("Allow", ", ".join(ALLOWED_METHODS)),
        ]
    return [("Content-Type", "application/health+json"), ("Cache-Control", "no-store")]


def with_wsgi_liveness(application: Callable) -> Callable:
    """Wrap a WSGI application so ``/live`` is answered before Django runs, as the middleware would:
    liveness stays cheap and independent of everything Django does."""

    def liveness_first(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") not in LIVE_PATHS:
            return application(environ, start_response)
        allowed = environ.get("REQUEST_METHOD") in ALLOWED_METHODS
        status, body = (200, _LIVE_BODY) if allowed else (405, _METHOD_NOT_ALLOWED_BODY)
        start_response(_STATUS_LINES[status], [*_headers(status), ("Content-Length", str(len(body)))])
        return [body]

    return liveness_first


class ProbeMiddleware:
    """First middleware: answers the probe paths, passes everything else on untouched."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        # Imported when Django builds its middleware, not with this module: see the module docstring.
        from django.http import HttpResponse

        from .health import answer
        from .health.answers import details_allowed

        self.get_response = get_response
        self.response_class = HttpResponse
        self.answer, self.details_allowed = answer, details_allowed

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path not in PROBE_PATHS:
            return self.get_response(request)
        if request.method not in ALLOWED_METHODS:
            status, body = 405, _METHOD_NOT_ALLOWED_BODY
        elif path in LIVE_PATHS:
            status, body = 200, _LIVE_BODY
        else:
            status, document = self.answer(ready=path in _READY_PATHS, details=self.details_allowed(request))
            body = _encode(document)
        response = self.response_class(body, status=status, headers=_headers(status))
        # Django logs every 4xx/5xx response at ERROR ("Service Unavailable: /ready"), which would be
        # one line per probe while a dependency is down; the runner logs each status change instead.
        response._has_been_logged = True
        return response
