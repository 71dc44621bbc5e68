"""Request metrics middleware, which also answers ``/metrics`` (docs/ARCHITECTURE.md, "Access").

Placed right after the probe middleware: it counts every response below it (the drain guard's 503s,
host validation's 400s) and answers scrapes before host validation, as Prometheus scrapes the pod IP.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from apps.ops.context import request_identity_function

from .definitions import (
    HTTP_REQUEST_DURATION,
    HTTP_REQUESTS,
    HTTP_TENANT_REQUEST_DURATION,
    HTTP_TENANT_REQUESTS,
)
from .labels import ANONYMOUS, STATUS_CLASSES, method_label, route_label, tenant_labels
from .views import METRICS_ROUTE, metrics_view

METRICS_PATHS = frozenset({"/metrics", "/metrics/"})


@functools.cache  # bounded: every argument is (method_label) or comes from a bounded set
def _recorders(method: str, route: str, status: int) -> tuple[Callable, Callable]:
    """The ``inc`` and ``observe`` of the labelled children a request with these labels records into.
    prometheus_client's labels() validates and locks on every call; a request pays one lookup here."""
    return HTTP_REQUESTS.labels(method, route, str(status)).inc, HTTP_REQUEST_DURATION.labels(
        method, route
    ).observe


_tenant_recorders = functools.cache(
    lambda tenant, status_class: (
        HTTP_TENANT_REQUESTS.labels(tenant, status_class).inc,
        HTTP_TENANT_REQUEST_DURATION.labels(tenant).observe,
    )
)


class RequestMetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.request_identity = request_identity_function()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        start = time.perf_counter()
        scrape = request.path_info in METRICS_PATHS
        response = None
        try:
            response = metrics_view(request) if scrape else self.get_response(request)
            return response
        finally:
            elapsed = time.perf_counter() - start
            # No response: an exception Django did not turn into one below this middleware.
            status = response.status_code if response is not None else 500
            # Read after the response: who sent the request is established deeper in the stack.
            authenticated, slug = self.request_identity(request)
            if authenticated:
                route = METRICS_ROUTE if scrape else route_label(request)
                count, observe = _recorders(method_label(request.method), route, status)
            else:  # whatever the method and route (docs/METRICS.md, "Who can create series")
                count, observe = _recorders(*ANONYMOUS, status)
            count()
            observe(elapsed)
            if slug:
                count, observe = _tenant_recorders(
                    tenant_labels.label(slug), STATUS_CLASSES.get(status, "other")
                )
                count()
                observe(elapsed)
