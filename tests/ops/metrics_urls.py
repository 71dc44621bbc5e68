"""A URLconf for metrics tests: one view that works, one that fails, and the real /metrics."""

from django.http import HttpResponse
from django.urls import include, path


def ok(request):
    return HttpResponse("ok")


def explode(request):
    raise RuntimeError("this view always fails")


urlpatterns = [
    path("ok", ok, name="ok"),
    path("explode", explode, name="explode"),
    path("", include("apps.ops.urls")),
]
