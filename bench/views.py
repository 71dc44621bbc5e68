"""Views that exist only for the benchmark: a trivial page and a slow request for drain timing."""

from __future__ import annotations

import os
import time
import uuid

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest


def trivial(request: HttpRequest) -> HttpResponse:
    """The least a Django view can do: what remains is the cost of the middleware stack."""
    return HttpResponse(b"ok", content_type="text/plain")


def slow(request: HttpRequest) -> HttpResponse:
    """Sleep ``?seconds=`` (at most 30), after leaving a marker file so the caller knows it started."""
    try:
        seconds = float(request.GET.get("seconds", "1"))
    except ValueError:
        return HttpResponseBadRequest("seconds must be a number\n", content_type="text/plain")
    if not 0 <= seconds <= 30:
        return HttpResponseBadRequest("seconds must be between 0 and 30\n", content_type="text/plain")
    marker_dir = settings.BENCH_INFLIGHT_DIR
    if marker_dir:
        # One empty file per started request: the benchmark polls their number, no guessing.
        with open(os.path.join(marker_dir, uuid.uuid4().hex), "x"):
            pass
    time.sleep(seconds)
    return HttpResponse(f"slept {seconds}\n", content_type="text/plain")
