"""DrainMiddleware: a stopping process refuses requests before any view runs; it tracks the others."""

from __future__ import annotations

from . import state

# WSGI environ key of a callable the server puts there to close the connection after the response:
# gunicorn drops a Connection header set by the application, as PEP 3333 asks.
CLOSE_CONNECTION_ENVIRON_KEY = "dotmac.close_connection"
REFUSAL_MESSAGE = "The server is restarting; retry the request."


class DrainMiddleware:
    """A request reaching a stopping process gets 503 before any view ran (a POST too may be sent again);
    while the drain is announced, responses close their connection (clients reconnect elsewhere)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        key = state.admit(request.method, request.path)
        if key is None:
            _close_connection(request)
            return _refusal(request)
        try:
            response = self.get_response(request)
        finally:
            state.finished(key)
        if state.is_draining():
            _close_connection(request)
        return response


def _close_connection(request) -> None:
    close = request.META.get(CLOSE_CONNECTION_ENVIRON_KEY)
    if close is not None:
        close()


def _refusal(request):
    # Imported here: the gunicorn master imports this package (for the drain state) without Django.
    from django.http import HttpResponse, JsonResponse

    from apps.ops.errors import wants_json

    if wants_json(request):
        response = JsonResponse({"error": "shutting_down", "detail": REFUSAL_MESSAGE}, status=503)
    else:
        response = HttpResponse(REFUSAL_MESSAGE + "\n", status=503, content_type="text/plain; charset=utf-8")
    response["Content-Length"] = str(len(response.content))
    response["Retry-After"] = "1"  # at once: another instance can take the request now
    response["Cache-Control"] = "no-store"
    # Counted in the process's drain summary; one ERROR line per refusal from django.request would
    # bury it (Django's log_response skips a response marked as logged).
    response._has_been_logged = True
    return response
