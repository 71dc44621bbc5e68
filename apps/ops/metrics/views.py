"""``/metrics``: the Prometheus exposition, behind a bearer token.

With ``METRICS_BEARER_TOKEN`` set, a scrape needs ``Authorization: Bearer <token>`` (401 without it
or with a wrong one). Without a token the endpoint is open in development and closed (401) in
production unless ``METRICS_PUBLIC=true`` says it is meant to be public.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client.exposition import choose_encoder

from apps.ops.bearer import presented_token, token_matches

from .collectors import scrape_registry

METRICS_ROUTE = "ops:metrics"


def _unauthorized(reason: str) -> HttpResponse:
    response = HttpResponse(reason + "\n", status=401, content_type="text/plain; charset=utf-8")
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    response["Cache-Control"] = "no-store"
    return response


def _refusal(request: HttpRequest) -> HttpResponse | None:
    """A 401 response when the request may not read the metrics, else None."""
    token = settings.METRICS_BEARER_TOKEN
    if token:
        authorization = request.META.get("HTTP_AUTHORIZATION", "")
        if not presented_token(authorization):
            return _unauthorized("metrics require an Authorization: Bearer token")
        if not token_matches(authorization, token):
            return _unauthorized("metrics bearer token is not valid")
        return None
    if settings.IS_PRODUCTION and not settings.METRICS_PUBLIC:
        return _unauthorized("metrics are closed: set METRICS_BEARER_TOKEN (or METRICS_PUBLIC=true)")
    return None


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Render every metric of every worker in the format the scraper asked for."""
    if request.method not in ("GET", "HEAD"):
        response = HttpResponse("metrics are read with GET\n", status=405, content_type="text/plain")
        response["Allow"] = "GET, HEAD"
        return response
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    encoder, content_type = choose_encoder(request.META.get("HTTP_ACCEPT", ""))
    response = HttpResponse(encoder(scrape_registry()), content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response
