"""Request metrics middleware, which also answers ``/metrics`` (docs/ARCHITECTURE.md, "Access").

Placed right after the probe middleware: it counts every response below it (the drain guard's 503s,
host validation's 400s) and answers scrapes before host validation, as Prometheus scrapes the pod IP.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from apps.ops.context import request_identity

from .definitions import (
    HTTP_REQUEST_DURATION,
    HTTP_REQUESTS,
    HTTP_TENANT_REQUEST_DURATION,
    HTTP_TENANT_REQUESTS,
)
from .labels import STATUS_CLASSES, method_label, request_labels, route_label, tenant_labels
from .views import METRICS_ROUTE, metrics_view

METRICS_PATHS = frozenset({"/metrics", "/metrics/"})

# Label values -> labelled child. prometheus_client's labels() validates and locks on every call;
# the label sets are bounded, so remembering their children is bounded too.
_counter_for = functools.cache(HTTP_REQUESTS.labels)
_histogram_for = functools.cache(HTTP_REQUEST_DURATION.labels)
_tenant_counter_for = functools.cache(HTTP_TENANT_REQUESTS.labels)
_tenant_histogram_for = functools.cache(HTTP_TENANT_REQUEST_DURATION.labels)


class RequestMetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

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
            authenticated, slug = request_identity(request)
            route = METRICS_ROUTE if scrape else route_label(request)
            counted, timed = request_labels(method_label(request.method), route, status, authenticated)
            _counter_for(*counted, str(status)).inc()
            _histogram_for(*timed).observe(elapsed)
            if slug:
                tenant = tenant_labels.label(slug)
                _tenant_counter_for(tenant, STATUS_CLASSES.get(status, "other")).inc()
                _tenant_histogram_for(tenant).observe(elapsed)
