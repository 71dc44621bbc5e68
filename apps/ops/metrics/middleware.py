"""Request metrics middleware, which also answers ``/metrics`` (docs/ARCHITECTURE.md, "Access").

Placed right after the probe middleware: it counts every response below it (the drain guard's 503s,
host validation's 400s) and answers scrapes before host validation, as Prometheus scrapes the pod IP.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from .definitions import HTTP_REQUEST_DURATION, HTTP_REQUESTS
from .labels import method_label, route_label, tenant_labels
from .views import METRICS_ROUTE, metrics_view

METRICS_PATHS = frozenset({"/metrics", "/metrics/"})

# Label values -> labelled child. prometheus_client's labels() validates and locks on every call;
# the label sets are bounded, so remembering their children is bounded too.
_counter_for = functools.cache(HTTP_REQUESTS.labels)
_histogram_for = functools.cache(HTTP_REQUEST_DURATION.labels)


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
            method = method_label(request.method)
            route = METRICS_ROUTE if scrape else route_label(request)
            # Read after the response: the tenant middleware runs deeper in the stack.
            tenant = tenant_labels.label(getattr(getattr(request, "tenant", None), "slug", None))
            # No response: an exception Django did not turn into one below this middleware.
            status = str(response.status_code) if response is not None else "500"
            _counter_for(method, route, status, tenant).inc()
            _histogram_for(method, route, tenant).observe(elapsed)
