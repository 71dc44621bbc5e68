"""The ceiling: a bare WSGI "hello" app, served by gunicorn with the project's config."""

from __future__ import annotations

from collections.abc import Callable, Iterable

_BODY = b"hello"
_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(_BODY)))]


def application(environ: dict, start_response: Callable) -> Iterable[bytes]:
    start_response("200 OK", list(_HEADERS))
    return [_BODY]
