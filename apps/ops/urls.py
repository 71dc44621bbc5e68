"""URLs served by the ops layer (management API, metrics). Probes are answered in middleware."""

from django.urls import path

from .metrics.views import metrics_view

app_name = "ops"

urlpatterns: list = [
    # Answered by RequestMetricsMiddleware before host validation; the pattern names the route.
    path("metrics", metrics_view, name="metrics"),
]
