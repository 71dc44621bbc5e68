"""``/metrics``: the Prometheus exposition, behind a bearer token (docs/ARCHITECTURE.md, "Access")."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from apps.ops.bearer import presented_token, token_matches

from .collectors import scrape_registry

METRICS_ROUTE = "ops:metrics"
_READ_METHODS = ("GET", "HEAD")


def _refusal(request: HttpRequest) -> str | None:
    """Why the request may not read the metrics; None when it may."""
    token = settings.METRICS_BEARER_TOKEN
    if not token:
        closed = settings.IS_PRODUCTION and not settings.METRICS_PUBLIC
        return "metrics are closed: set METRICS_BEARER_TOKEN (or METRICS_PUBLIC=true)" if closed else None
    authorization = request.META.get("HTTP_AUTHORIZATION", "")
    if not presented_token(authorization):
        return "metrics require an Authorization: Bearer token"
    if not token_matches(authorization, token):
        return "metrics bearer token is not valid"
    return None


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Render every metric of every worker."""
    if request.method not in _READ_METHODS:
        return HttpResponseNotAllowed(_READ_METHODS, "metrics are read with GET\n", content_type="text/plain")
    refusal = _refusal(request)
    if refusal:
        response = HttpResponse(refusal + "\n", status=401, content_type="text/plain; charset=utf-8")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    else:
        # Always the text format, whatever Accept prefers: Prometheus accepts it, and with thousands of
        # series prometheus_client encodes OpenMetrics about 2.5 times slower (docs/METRICS.md).
        response = HttpResponse(generate_latest(scrape_registry()), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
