"""Request metrics middleware, which also answers ``/metrics`` (docs/ARCHITECTURE.md, "Access").

Placed right after the probe middleware, so it counts every response below it (the drain guard's
503s, host validation's 400s) and answers scrapes before host validation: Prometheus scrapes the pod
IP, which is not in ``ALLOWED_HOSTS``.
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
    """Records ``http_requests_total`` and ``http_request_duration_seconds`` for every request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        start = time.perf_counter()
        if request.path_info in METRICS_PATHS:
            response = metrics_view(request)
            self.record(request, response, start, route=METRICS_ROUTE)
            return response
        try:
            response = self.get_response(request)
        except BaseException:
            # Django turns exceptions into responses below this middleware; this covers the rest.
            self.record(request, None, start)
            raise
        self.record(request, response, start)
        return response

    def record(
        self, request: HttpRequest, response: HttpResponse | None, start: float, route: str | None = None
    ) -> None:
        elapsed = time.perf_counter() - start
        method = method_label(request.method)
        route = route or route_label(request)
        # Read after the response: the tenant middleware runs deeper in the stack.
        tenant = tenant_labels.label(getattr(getattr(request, "tenant", None), "slug", None))
        status = str(response.status_code) if response is not None else "500"
        _counter_for(method, route, status, tenant).inc()
        _histogram_for(method, route, tenant).observe(elapsed)
