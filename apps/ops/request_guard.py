"""Refuse requests carrying a NUL character in their query string or form body (400, explained).

PostgreSQL text cannot hold NUL, so such a value reaching a query fails there with a 500 (a search,
an admin filter, the admin's autocomplete); SQLite accepts it, which hides the problem in
development. No person types a NUL: refusing the whole request is the clear answer.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse

MESSAGE = "The request contains a NUL character (%00), which no field accepts."


class RejectNulCharactersMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _has_nul(request):
            if request.path.startswith("/api/"):
                return JsonResponse({"error": MESSAGE}, status=400)
            return HttpResponse(MESSAGE, status=400, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


def _has_nul(request: HttpRequest) -> bool:
    # Searched in the raw, still encoded text: a NUL can only arrive as %00 (or raw), and a search of
    # the string costs nothing next to decoding every parameter of every request.
    query = request.META.get("QUERY_STRING", "")
    if "%00" in query or "\0" in query:
        return True
    # Only a urlencoded body, which Django reads whole anyway: reading a multipart one here would
    # consume the stream a view may need.
    if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
        return b"%00" in request.body or b"\0" in request.body
    return False
