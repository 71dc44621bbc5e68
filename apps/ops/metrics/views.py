"""``/metrics``: the Prometheus exposition, behind a bearer token (docs/ARCHITECTURE.md, "Access")."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from prometheus_client.exposition import choose_encoder

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
    """Render every metric of every worker in the format the scraper asked for."""
    if request.method not in _READ_METHODS:
        return HttpResponseNotAllowed(_READ_METHODS, "metrics are read with GET\n", content_type="text/plain")
    refusal = _refusal(request)
    if refusal:
        response = HttpResponse(refusal + "\n", status=401, content_type="text/plain; charset=utf-8")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    else:
        encoder, content_type = choose_encoder(request.META.get("HTTP_ACCEPT", ""))
        response = HttpResponse(encoder(scrape_registry()), content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response
