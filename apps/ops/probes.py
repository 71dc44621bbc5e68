"""``/live``, ``/ready`` and ``/health``, answered before host validation, sessions, CSRF, auth and tenants.

Kubelets and load balancers send the pod IP as the ``Host`` header and probe over plain HTTP, so the
probes must answer before ``ALLOWED_HOSTS`` validation and the production SSL redirect. Hence
:class:`ProbeMiddleware` is the first middleware and never calls ``request.get_host()``.
``/live`` is also answered one level lower, by :func:`with_wsgi_liveness` around the WSGI
application, so a liveness probe costs no Django request at all.

- ``/live``: 200 ``{"status": "pass"}`` unless the process marked itself broken (503). Touches no
  database, cache, breaker or network; stays 200 while draining.
- ``/ready``: the readiness checks; 200 when every critical check passes, else 503 (draining included).
- ``/health``: service, version, environment, uptime and every check; 503 on a critical failure.

GET and HEAD only (405 with ``Allow`` otherwise); ``Cache-Control: no-store``;
``application/health+json``. Details (messages, timings, components) follow
``HEALTH_SHOW_DETAILS``: ``never``, ``when_authorized`` (a bearer ``OPS_API_TOKEN`` or a staff
session) or ``always``. Anonymous callers get statuses only.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Iterable
from importlib import import_module
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from .health import full_report, readiness_report
from .health.liveness import broken_reason
from .health.report import CONTENT_TYPE, live_document, service_document

logger = logging.getLogger(__name__)

ALLOWED_METHODS = ("GET", "HEAD")
_ALLOW = ", ".join(ALLOWED_METHODS)
LIVE_PATHS = frozenset({"/live", "/live/"})
_READY_PATHS = frozenset({"/ready", "/ready/"})
_HEALTH_PATHS = frozenset({"/health", "/health/"})

_BEARER = "bearer "


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


_METHOD_NOT_ALLOWED_BODY = _encode({"error": "method not allowed", "allowed": list(ALLOWED_METHODS)})
_LIVE_PASS_BODY = _encode(live_document(None, details=False))


def token_authorized(authorization: str) -> bool:
    """True for ``Authorization: Bearer <OPS_API_TOKEN>`` (constant-time compare; no token set → False)."""
    token = settings.OPS_API_TOKEN
    if not token or authorization[: len(_BEARER)].lower() != _BEARER:
        return False
    return hmac.compare_digest(authorization[len(_BEARER) :].strip().encode(), token.encode())


def _staff_session(request: HttpRequest) -> bool:
    """Is the caller a logged-in, active staff user? Loads the session only when its cookie came.

    This middleware runs before SessionMiddleware, so the session is loaded here, and only then:
    probes from the kubelet carry no cookie and stay free of database work.
    """
    session_key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if not session_key:
        return False
    try:
        from django.contrib.auth import get_user

        request.session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
        user = get_user(request)
        return bool(user.is_active and user.is_staff)
    except Exception:  # a session store that is down means "not authorized", never a 500
        logger.warning("could not read the session of a probe request", exc_info=True)
        return False


def details_allowed(request: HttpRequest) -> bool:
    """Whether this caller may see messages, timings and components (``HEALTH_SHOW_DETAILS``)."""
    policy = settings.HEALTH_SHOW_DETAILS
    if policy == "always":
        return True
    if policy == "never":
        return False
    return token_authorized(request.META.get("HTTP_AUTHORIZATION", "")) or _staff_session(request)


def _live_details_allowed(authorization: str) -> bool:
    # /live never loads a session: liveness must not touch the database.
    policy = settings.HEALTH_SHOW_DETAILS
    return policy == "always" or (policy == "when_authorized" and token_authorized(authorization))


def live_answer(method: str, authorization: str) -> tuple[int, bytes]:
    """Status and body of ``/live`` (shared by the WSGI handler and the middleware)."""
    if method not in ALLOWED_METHODS:
        return 405, _METHOD_NOT_ALLOWED_BODY
    reason = broken_reason()
    if reason is None:
        return 200, _LIVE_PASS_BODY
    return 503, _encode(live_document(reason, details=_live_details_allowed(authorization)))


def _headers(status: int) -> list[tuple[str, str]]:
    headers = [
        ("Content-Type", "application/json" if status == 405 else CONTENT_TYPE),
        ("Cache-Control", "no-store"),
    ]
    if status == 405:
        headers.append(("Allow", _ALLOW))
    return headers


def _response(status: int, body: bytes) -> HttpResponse:
    response = HttpResponse(body, status=status)
    for name, value in _headers(status):
        response[name] = value
    # Django logs every 4xx/5xx response at ERROR ("Service Unavailable: /ready"), which would be
    # one line per probe while a dependency is down; the runner logs each status change instead.
    response._has_been_logged = True
    return response


def _live(request: HttpRequest) -> HttpResponse:
    return _response(*live_answer(request.method or "", request.META.get("HTTP_AUTHORIZATION", "")))


def _ready(request: HttpRequest) -> HttpResponse:
    report = readiness_report()
    return _response(report.http_status, _encode(report.as_health_json(details=details_allowed(request))))


def _health(request: HttpRequest) -> HttpResponse:
    report = full_report()
    document = service_document(
        report,
        details=details_allowed(request),
        service=settings.SERVICE_NAME,
        version=settings.APP_VERSION,
        environment=settings.DJANGO_ENV,
    )
    return _response(report.http_status, _encode(document))


def _probe_view(path: str) -> Callable[[HttpRequest], HttpResponse] | None:
    if path in LIVE_PATHS:
        return _live
    if path in _READY_PATHS:
        return _ready
    if path in _HEALTH_PATHS:
        return _health
    return None


class ProbeMiddleware:
    """First middleware: answers the probe paths, passes everything else on untouched."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = _probe_view(request.path_info)
        if view is None:
            return self.get_response(request)
        if request.method not in ALLOWED_METHODS:
            return _response(405, _METHOD_NOT_ALLOWED_BODY)
        return view(request)


_STATUS_LINES = {200: "200 OK", 405: "405 Method Not Allowed", 503: "503 Service Unavailable"}


def with_wsgi_liveness(application: Callable) -> Callable:
    """Wrap a WSGI application so ``/live`` is answered before Django runs (same answer as the
    middleware gives), which keeps liveness cheap and independent of everything Django does."""

    def liveness_first(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") not in LIVE_PATHS:
            return application(environ, start_response)
        status, body = live_answer(environ.get("REQUEST_METHOD", ""), environ.get("HTTP_AUTHORIZATION", ""))
        start_response(_STATUS_LINES[status], [*_headers(status), ("Content-Length", str(len(body)))])
        return [body]

    return liveness_first
