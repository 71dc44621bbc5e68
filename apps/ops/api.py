"""The circuit breaker REST API (``/api/v1/circuit-breakers/...``): authenticate, call a service, render.

Allowed, checked before anything else: ``Authorization: Bearer <OPS_API_TOKEN>`` (automation; no
session, so no CSRF), or the session of staff who may reset breakers (unsafe methods need a valid
CSRF token). Anonymous or a wrong token → 401, logged in without the rights → 403. Every answer is JSON.
The contract, ``openapi.yaml`` next to this module, is served without authentication (it holds no
secret) at ``/api/v1/circuit-breakers/openapi.yaml``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from apps.ops import bearer, breakers, services
from apps.ops.models import BreakerResetAudit, may_reset_breakers

TOKEN_ACTOR = "api-token"
# The API's contract (OpenAPI 3.1), kept here so that the image ships it; docs/openapi.yaml links to it.
OPENAPI_DOCUMENT = Path(__file__).with_name("openapi.yaml").read_bytes()


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JsonResponse:
    return JsonResponse({"error": message}, status=status, headers=headers)


def _method_not_allowed(request: HttpRequest, methods: tuple[str, ...]) -> JsonResponse:
    return _error(405, f"method {request.method} not allowed", {"Allow": ", ".join(methods)})


class _CsrfCheck(CsrfViewMiddleware):
    """Django's own CSRF check, run on demand: returns the failure reason instead of a response."""

    def _reject(self, request: HttpRequest, reason: str) -> str:  # type: ignore[override]
        return reason


def _csrf_failure(request: HttpRequest) -> str | None:
    check = _CsrfCheck(lambda _request: None)  # type: ignore[arg-type,return-value]
    check.process_request(request)
    return check.process_view(request, None, (), {})  # type: ignore[arg-type,return-value]


def _authenticate(request: HttpRequest) -> tuple[AbstractBaseUser | str | None, JsonResponse | None]:
    """(actor, None) when allowed, else (None, the error response)."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        if bearer.presented_token(header) is None:
            return None, _error(
                401, "unsupported authorization scheme (use Bearer)", {"WWW-Authenticate": "Bearer"}
            )
        if bearer.token_matches(header, settings.OPS_API_TOKEN):
            return TOKEN_ACTOR, None
        return None, _error(401, "invalid token", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
    user = request.user
    if not user.is_authenticated:
        return None, _error(401, "authentication required", {"WWW-Authenticate": "Bearer"})
    if not may_reset_breakers(user):
        return None, _error(403, "staff with the permission to reset circuit breakers only")
    if request.method not in {"GET", "HEAD", "OPTIONS", "TRACE"}:
        reason = _csrf_failure(request)
        if reason:
            return None, _error(403, f"CSRF check failed: {reason}")
    return user, None


def _ops_endpoint(*methods: str) -> Callable:
    """Authenticate, then allow only ``methods`` (405 in JSON otherwise; none given: any method)."""

    def decorate(view: Callable[..., JsonResponse]) -> Callable[..., JsonResponse]:
        @csrf_exempt  # checked in _authenticate for sessions; bearer-token calls carry no cookie
        @never_cache
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
            actor, failure = _authenticate(request)
            if failure is not None:
                return failure
            if methods and request.method not in methods:
                return _method_not_allowed(request, methods)
            return view(request, actor, *args, **kwargs)

        return wrapper

    return decorate


@_ops_endpoint("GET", "HEAD")
def breaker_status(request: HttpRequest, actor: Any) -> JsonResponse:
    """Every known breaker with its live state."""
    return JsonResponse({"breakers": [status.as_dict() for status in breakers.all_statuses()]})


@_ops_endpoint("POST")
def breaker_reset(request: HttpRequest, actor: Any, name: str) -> JsonResponse:
    """Reset one breaker; 404 for a name nobody configured or used."""
    try:
        status = services.breaker_reset(name=name, actor=actor, via=BreakerResetAudit.Via.API)
    except services.UnknownBreaker:
        return _error(404, "unknown circuit breaker")
    return JsonResponse(status.as_dict())


@_ops_endpoint("POST")
def breaker_reset_all(request: HttpRequest, actor: Any) -> JsonResponse:
    """Reset every known breaker."""
    statuses = services.breaker_reset_all(actor=actor, via=BreakerResetAudit.Via.API)
    return JsonResponse({"reset": len(statuses), "breakers": [status.as_dict() for status in statuses]})


@_ops_endpoint()
def not_found(request: HttpRequest, actor: Any, rest: str = "") -> JsonResponse:
    """Any other path under the circuit breaker API."""
    return _error(404, "not found")


@csrf_exempt  # nothing to protect; a POST gets the JSON 405, not the CSRF page
def openapi_document(request: HttpRequest) -> HttpResponse:
    """The contract of this API, for anyone who can reach it."""
    if request.method not in {"GET", "HEAD"}:
        return _method_not_allowed(request, ("GET", "HEAD"))
    return HttpResponse(OPENAPI_DOCUMENT, content_type="application/yaml")
