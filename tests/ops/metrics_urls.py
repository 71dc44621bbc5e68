"""A URLconf for metrics tests: one view that works, one that fails, and the project's own."""

from django.http import HttpResponse
from django.urls import path

from dotmac.urls import urlpatterns as project_urlpatterns


def ok(request):
    return HttpResponse("ok")


def explode(request):
    raise RuntimeError("this view always fails")


urlpatterns = [
    path("ok", ok, name="ok"),
    path("explode", explode, name="explode"),
    *project_urlpatterns,  # the real /metrics, and the pages the error templates link to
]
