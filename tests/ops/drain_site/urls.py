"""The project's URLs plus ``/slow/``: a view that calls a slow local upstream through ``apps.ops.http``.

The upstream (``DRAIN_TEST_UPSTREAM_URL``, a server the test runs) decides how long a request
stays in flight.
"""

import os

from django.http import JsonResponse
from django.urls import include, path

from apps.ops import http


def slow(request):
    response = http.request(
        "GET", f"{os.environ['DRAIN_TEST_UPSTREAM_URL']}/provision", breaker="provisioning"
    )
    return JsonResponse({"upstream_status": response.status})


urlpatterns = [
    path("slow/", slow),
    path("", include("dotmac.urls")),
]
