"""URLs served by the ops layer (management API, metrics). Probes are answered in middleware."""

from django.urls import path  # noqa: F401

app_name = "ops"

urlpatterns: list = []
