"""``bench.interleaved:application``: one worker serving two variants of the stack, request by request.

A path prefix picks the variant: ``/~with/<path>`` goes through the project's whole middleware
stack, ``/~without/<path>`` through the same stack without the middleware whose dotted path starts
with ``BENCH_WITHOUT_MIDDLEWARE`` (``MIDDLEWARE_WITHOUT`` of ``bench.settings``); the prefix is removed
before Django sees the request. A load that alternates the two prefixes makes the variants take
turns in the same process, on the same connections, within microseconds of each other, so a
change of the machine's speed (about 10 % over a few seconds on a shared virtual machine) hits
both alike; two servers measured one after the other cannot tell that apart from a difference.

Every request's thread CPU time is added to its variant's total; ``GET /~stats`` answers the
totals and the process's own CPU time as JSON. The process's CPU time beyond the two totals is the
server's share of the requests (HTTP parsing, sockets): the same for both variants.
"""

from __future__ import annotations

import json
import os
import threading
import time

from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application
from django.test.utils import override_settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
get_wsgi_application()  # django.setup()

from django.conf import settings  # noqa: E402  (after setup)

if not settings.BENCH_WITHOUT_MIDDLEWARE:
    raise RuntimeError("BENCH_WITHOUT_MIDDLEWARE must name the middleware the second variant goes without")


def _handler(middleware: list[str]) -> WSGIHandler:
    # A handler reads MIDDLEWARE once, when it is built.
    with override_settings(MIDDLEWARE=middleware):
        return WSGIHandler()


WITHOUT_MIDDLEWARE = [entry for entry in settings.MIDDLEWARE if entry not in settings.MIDDLEWARE_WITHOUT]
_HANDLERS = {
    "with": _handler(list(settings.MIDDLEWARE)),
    "without": _handler(settings.MIDDLEWARE_WITHOUT),
}
_PREFIXES = {f"/~{name}/": name for name in _HANDLERS}

_lock = threading.Lock()
_totals = {name: {"requests": 0, "cpu_seconds": 0.0} for name in _HANDLERS}


def _stats() -> bytes:
    with _lock:
        totals = {name: dict(values) for name, values in _totals.items()}
    return json.dumps(
        {
            "variants": totals,
            "process_cpu_seconds": time.process_time(),
            "without_middleware": WITHOUT_MIDDLEWARE,
        }
    ).encode()


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/~stats":
        body = _stats()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    for prefix, name in _PREFIXES.items():
        if path.startswith(prefix):
            environ["PATH_INFO"] = path[len(prefix) - 1 :]
            began = time.thread_time()
            response = _HANDLERS[name](environ, start_response)
            spent = time.thread_time() - began
            with _lock:
                _totals[name]["requests"] += 1
                _totals[name]["cpu_seconds"] += spent
            return response
    body = b"unknown variant: paths start with /~with/ or /~without/\n"
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
