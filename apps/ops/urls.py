"""URLs served by the ops layer (management API, its OpenAPI document, metrics); probes: in middleware."""

from django.urls import path, re_path

from . import api
from .metrics.views import metrics_view

app_name = "ops"

urlpatterns: list = [
    # Answered by RequestMetricsMiddleware before host validation; the pattern names the route.
    path("metrics", metrics_view, name="metrics"),
    # Circuit breakers. ``<path:name>`` so that odd names (slashes included) reach the view and get
    # its JSON 404; anything else under the prefix gets one too.
    path("api/v1/circuit-breakers/openapi.yaml", api.openapi_document, name="openapi"),
    path("api/v1/circuit-breakers/status", api.breaker_status, name="breaker-status"),
    path("api/v1/circuit-breakers/reset-all", api.breaker_reset_all, name="breaker-reset-all"),
    path("api/v1/circuit-breakers/<path:name>/reset", api.breaker_reset, name="breaker-reset"),
    re_path(r"^api/v1/circuit-breakers(?:/(?P<rest>[\s\S]*))?$", api.not_found),  # newlines too
]
