"""One HTTP/1.x request per connection on the probe port: read it within a deadline, answer, close.

GET and HEAD of the probe paths go to the WSGI application (its ``ProbeMiddleware`` answers them,
so the answers are the main port's, draining included); another path gets 404, another method 405,
a malformed request 400, a head over 8 KiB 431, a head not received in time 408.

Only the standard library, and no Django import: the gunicorn master imports the probe listener.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import socket
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from .probes import ALLOWED_METHODS, PROBE_PATHS

logger = logging.getLogger(__name__)

WSGIApplication = Callable[[dict[str, Any], Callable[..., Callable[[bytes], object]]], Iterable[bytes]]

# A probe request is a request line and a few headers; a token or a session cookie fits easily.
_MAX_HEAD_BYTES = 8192
_MAX_HEADERS = 100
# Bytes of an unexpected request body read (and dropped) before closing, so the close sends a FIN
# rather than a reset that could destroy the response before the client read it.
_MAX_DISCARD_BYTES = 65536
_DISCARD_SECONDS = 0.5

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(rb"HTTP/1\.[0-9]")
_TARGET_FORBIDDEN = re.compile(rb"[\x00-\x20\x7f-\xff]")
_VALUE_FORBIDDEN = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_LINE_END = re.compile(rb"\r?\n")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
# Set by the application or meaningless on a one-request connection: the server writes its own.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade"})


@dataclass(eq=False)
class _Reject(Exception):
    """The request cannot be served: answer ``status`` with ``message`` and close."""

    status: int
    message: str


def serve_one_request(
    connection: socket.socket, peer: tuple[Any, ...], application: WSGIApplication, *, timeout: float
) -> None:
    """Read one request within ``timeout`` seconds in all and answer it; the caller closes the connection."""
    try:
        head, rest = _read_head(connection, time.monotonic() + timeout)
        if head is None:
            return  # connected and closed (a TCP check) or sent nothing in time
        response = _respond(_parse(head), connection, peer, application)
        unread_input = rest or _has_body(head)
    except _Reject as reject:
        response, unread_input = _plain(reject.status, reject.message), True  # it may still be sending
    connection.settimeout(timeout)  # the request had its deadline; the small answer gets a fresh one
    connection.sendall(response)
    if unread_input:
        _discard_input(connection)


def _read_head(connection: socket.socket, deadline: float) -> tuple[bytes | None, bytes]:
    """The request line and headers (without the blank line), and the bytes read after them.

    None when the client sent nothing before closing or before the deadline. The deadline covers
    the whole head, not each read, so a client sending a byte at a time gains nothing.
    """
    buffer = b""
    while True:
        buffer = buffer.lstrip(b"\r\n")  # empty lines before a request line are to be ignored
        end = _HEAD_END.search(buffer)
        if (end.start() if end else len(buffer)) > _MAX_HEAD_BYTES:
            raise _Reject(431, "request head too large")
        if end is not None:
            return buffer[: end.start()], buffer[end.end() :]
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if not buffer:
                return None, b""
            raise _Reject(408, "request not received in time")
        connection.settimeout(remaining)
        try:
            chunk = connection.recv(4096)
        except TimeoutError:
            continue  # the deadline check above answers
        if not chunk:
            if not buffer:
                return None, b""
            raise _Reject(400, "incomplete request")
        buffer += chunk


def _parse(head: bytes) -> dict[str, Any]:
    """The WSGI environ (PEP 3333) of a request head, but for the server's and the peer's addresses."""
    lines = _LINE_END.split(head)
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not _VERSION.fullmatch(parts[2]):
        raise _Reject(400, "malformed request line")
    method, target, version = parts
    if not target or _TARGET_FORBIDDEN.search(target):
        raise _Reject(400, "malformed request target")
    if target.startswith(b"/"):
        path, _, query = target.partition(b"?")
    elif target.lower().startswith((b"http://", b"https://")):  # absolute form, as proxies send
        split = urlsplit(target)
        path, query = split.path or b"/", split.query
    elif target == b"*":
        path, query = target, b""
    else:
        raise _Reject(400, "malformed request target")
    if len(lines) - 1 > _MAX_HEADERS:
        raise _Reject(431, "too many header fields")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method.decode(),
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),  # PEP 3333: its bytes as latin-1
        "QUERY_STRING": query.decode(),
        "RAW_URI": target.decode(),
        "SERVER_PROTOCOL": version.decode(),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        value = value.strip(b" \t")
        # No space before the colon, no line folding (RFC 9112 section 5): both are smuggling tools.
        if not colon or not _TOKEN.fullmatch(name) or _VALUE_FORBIDDEN.search(value):
            raise _Reject(400, "malformed header field")
        # Names with underscores are dropped, as gunicorn does: "X_Token" and "X-Token" would both
        # become HTTP_X_TOKEN. A body is never passed on, so neither is its length.
        if b"_" in name or name.lower() in (b"content-length", b"transfer-encoding"):
            continue
        key = name.decode().upper().replace("-", "_")
        key = key if key == "CONTENT_TYPE" else f"HTTP_{key}"
        environ[key] = (
            f"{environ[key]},{value.decode('latin-1')}" if key in environ else value.decode("latin-1")
        )
    return environ


def _has_body(head: bytes) -> bool:
    """Whether the request head announces a body (a non-zero Content-Length or Transfer-Encoding)."""
    for line in _LINE_END.split(head)[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"", b"0")):
            return True
    return False


def _respond(
    environ: dict[str, Any], connection: socket.socket, peer: tuple[Any, ...], application: WSGIApplication
) -> bytes:
    path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
    if path not in PROBE_PATHS:
        return _plain(404, "not found: this port answers /live, /ready and /health only")
    if method not in ALLOWED_METHODS:
        return _plain(405, "method not allowed: GET or HEAD", [("Allow", ", ".join(ALLOWED_METHODS))])
    local = connection.getsockname()
    environ.update(
        SERVER_NAME=str(local[0]),
        SERVER_PORT=str(local[1]),
        REMOTE_ADDR=str(peer[0]),
        REMOTE_PORT=str(peer[1]),
    )
    try:
        status, headers, body = _call(application, environ)
    except Exception:
        logger.exception("probe listener: the application failed on %s", path)
        return _plain(500, "internal server error")
    return _serialize(status, headers, body, head=method == "HEAD")


def _call(application: WSGIApplication, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """Run the WSGI application; its status, headers and whole body (probe answers are small)."""
    started: list[tuple[str, list[tuple[str, str]]]] = []
    chunks: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
        # Nothing is sent before the application returns, so a later call (with exc_info, after
        # an error) may always replace the status and headers, as PEP 3333 allows.
        started[:] = [(status, list(headers))]
        return chunks.append

    result = application(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        if hasattr(result, "close"):
            result.close()  # Django sends request_finished here: the thread's database connections close
    if not started:
        raise RuntimeError("the application returned without calling start_response")
    return *started[0], b"".join(chunks)


def _serialize(status: str, headers: list[tuple[str, str]], body: bytes, *, head: bool) -> bytes:
    length = str(len(body))
    if head:
        # HEAD gets GET's headers: the application's length when it gave one (it may send no body).
        length = next((v for k, v in headers if k.lower() == "content-length"), length)
    kept = [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP]
    if not any(k.lower() == "date" for k, _ in kept):
        kept.append(("Date", formatdate(usegmt=True)))
    kept += [("Content-Length", length), ("Connection", "close")]
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in kept), "", ""]
    return "\r\n".join(lines).encode("latin-1") + (b"" if head else body)


def _plain(status: int, message: str, extra: list[tuple[str, str]] | None = None) -> bytes:
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store"), *(extra or [])]
    return _serialize(f"{status} {HTTPStatus(status).phrase}", headers, f"{message}\n".encode(), head=False)


def _discard_input(connection: socket.socket) -> None:
    """Stop sending, then read what the client still sends, briefly, so the close is not a reset."""
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + _DISCARD_SECONDS
        discarded = 0
        while discarded < _MAX_DISCARD_BYTES and (remaining := deadline - time.monotonic()) > 0:
            connection.settimeout(remaining)
            chunk = connection.recv(4096)
            if not chunk:
                return
            discarded += len(chunk)
