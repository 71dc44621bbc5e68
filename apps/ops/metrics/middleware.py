"""Request metrics middleware: one counter and one histogram per request, with bounded labels.

Placed right after the probe middleware, so it sees every response of the stack below it (the
drain guard's 503s, host validation's 400s, every view). It also answers ``/metrics`` itself,
before host validation, sessions and tenant resolution: Prometheus scrapes the pod IP, which is
not in ``ALLOWED_HOSTS``, and a scrape has no tenant: it is counted with ``tenant="none"``. Probes
are answered by the probe middleware before this one, so they are not counted at all.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from .definitions import RequestMetrics
from .labels import method_label, route_label, tenant_labels
from .views import METRICS_ROUTE, metrics_view

METRICS_PATHS = frozenset({"/metrics", "/metrics/"})


class RequestMetricsMiddleware:
    """Records ``http_requests_total`` and ``http_request_duration_seconds`` for every request."""

    metrics_cls = RequestMetrics

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        metrics = self.metrics_cls.get_instance()
        # Label values -> labelled child. prometheus_client's labels() validates and locks on every
        # call; the label sets are bounded, so remembering their children is bounded too.
        self.counter_for = functools.cache(metrics.requests_total.labels)
        self.histogram_for = functools.cache(metrics.request_duration.labels)

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
        self.counter_for(method, route, status, tenant).inc()
        self.histogram_for(method, route, tenant).observe(elapsed)
