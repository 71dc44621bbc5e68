"""The root URLconf's ``handler500``: 503 when the database is unreachable, 500 otherwise
(docs/ARCHITECTURE.md, "The database during an outage"). Django calls it inside the ``except`` block
of the view or middleware that raised. The 503 page touches no database (no session, no user).
"""

from __future__ import annotations

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader
from django.views.defaults import server_error as django_server_error

# Seconds a client should wait before trying again: about the time the pool takes to reconnect.
RETRY_AFTER_SECONDS = 5
UNAVAILABLE_MESSAGE = "The service is temporarily unavailable. Please try again in a few seconds."


def is_database_unavailable(exc: BaseException | None) -> bool:
    """Whether ``exc`` says the database cannot be reached (rather than refusing one query)."""
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    # psycopg's OperationalError also covers a query cancelled by a statement timeout or a
    # deadlock: those are the request's own trouble. A connection that is closed, never opened or
    # not handed out by the pool is the database's.
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith(("08", "57P"))  # client-side, connection, shutdown


def wants_json(request: HttpRequest) -> bool:
    """An API request, or a client asking for JSON: its error answers are JSON."""
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


def server_error(request: HttpRequest, template_name: str = "500.html") -> HttpResponse:
    exc = sys.exc_info()[1]
    if not is_database_unavailable(exc):
        return django_server_error(request, template_name)
    if wants_json(request):
        response: HttpResponse = JsonResponse({"error": UNAVAILABLE_MESSAGE}, status=503)
    else:
        body = loader.render_to_string("ops/503.html", {"message": UNAVAILABLE_MESSAGE})
        response = HttpResponse(body, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response
