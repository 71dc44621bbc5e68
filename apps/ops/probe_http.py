"""One HTTP/1.x request per connection on the probe port: read it, answer it, close.

GET and HEAD of the probe paths go to the WSGI application (its ``ProbeMiddleware`` answers them,
so the answers are those of the main port, draining included); any other path gets 404, another
method 405, a malformed request 400, a head over 8 KiB 431, a head not received in time 408. The
answer always says ``Connection: close``.

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
MAX_HEAD_BYTES = 8192
MAX_HEADERS = 100
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


def serve_one_request(
    connection: socket.socket, peer: tuple[Any, ...], application: WSGIApplication, *, timeout: float
) -> None:
    """Read one request within ``timeout`` seconds in all and answer it; the caller closes the connection."""
    deadline = time.monotonic() + timeout
    try:
        head, rest = _read_head(connection, deadline)
    except _Reject as reject:
        _send(connection, _plain(reject.status, reject.message), timeout=1.0)
        _discard_input(connection)  # what the client is still sending
        return
    if head is None:
        return  # connected and closed (a TCP check) or sent nothing in time
    try:
        request = _parse(head)
    except _Reject as reject:
        response = _plain(reject.status, reject.message)
    else:
        response = _respond(request, connection, peer, application)
    # The request had its own deadline; writing the small answer gets a fresh one.
    _send(connection, response, timeout=timeout)
    if rest or _has_body(head):
        _discard_input(connection)


class _Reject(Exception):
    """The request cannot be served: answer ``status`` with ``message`` and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    target: str
    version: str
    path_info: str
    query: str
    headers: list[tuple[str, str]]

    def environ(self, *, server: tuple[str, int], peer: tuple[Any, ...]) -> dict[str, Any]:
        """The WSGI environ (PEP 3333) of this request; it has no body."""
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": self.path_info,
            "QUERY_STRING": self.query,
            "RAW_URI": self.target,
            "SERVER_NAME": server[0],
            "SERVER_PORT": str(server[1]),
            "SERVER_PROTOCOL": self.version,
            "REMOTE_ADDR": str(peer[0]),
            "REMOTE_PORT": str(peer[1]),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        for name, value in self.headers:
            # Names with underscores are dropped, as gunicorn does: "X_Token" and "X-Token" would
            # both become HTTP_X_TOKEN. A body is never passed on, so neither is its length.
            if "_" in name or name.lower() in ("content-length", "transfer-encoding"):
                continue
            key = name.upper().replace("-", "_")
            key = key if key == "CONTENT_TYPE" else f"HTTP_{key}"
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ


def _read_head(connection: socket.socket, deadline: float) -> tuple[bytes | None, bytes]:
    """The request line and headers (without the blank line), and the bytes read after them.

    None when the client sent nothing before closing or before the deadline. The deadline covers
    the whole head, not each read, so a client sending a byte at a time gains nothing.
    """
    buffer = b""
    while True:
        buffer = buffer.lstrip(b"\r\n")  # empty lines before a request line are to be ignored
        end = _HEAD_END.search(buffer)
        if (end.start() if end else len(buffer)) > MAX_HEAD_BYTES:
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


def _parse(head: bytes) -> _Request:
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
    if len(lines) - 1 > MAX_HEADERS:
        raise _Reject(431, "too many header fields")
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        value = value.strip(b" \t")
        # No space before the colon, no line folding (RFC 9112 section 5): both are smuggling tools.
        if not colon or not _TOKEN.fullmatch(name) or _VALUE_FORBIDDEN.search(value):
            raise _Reject(400, "malformed header field")
        headers.append((name.decode("ascii"), value.decode("latin-1")))
    # PEP 3333: PATH_INFO is the decoded path, its bytes as latin-1 characters.
    path_info = unquote_to_bytes(path).decode("latin-1")
    return _Request(method.decode(), target.decode(), version.decode(), path_info, query.decode(), headers)


def _has_body(head: bytes) -> bool:
    """Whether the request head announces a body (a non-zero Content-Length or Transfer-Encoding)."""
    for line in _LINE_END.split(head)[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"", b"0")):
            return True
    return False


def _respond(
    request: _Request, connection: socket.socket, peer: tuple[Any, ...], application: WSGIApplication
) -> bytes:
    if request.path_info not in PROBE_PATHS:
        return _plain(404, "not found: this port answers /live, /ready and /health only")
    if request.method not in ALLOWED_METHODS:
        return _plain(405, "method not allowed: GET or HEAD", [("Allow", ", ".join(ALLOWED_METHODS))])
    local = connection.getsockname()
    environ = request.environ(server=(str(local[0]), int(local[1])), peer=peer)
    try:
        status, headers, body = _call(application, environ)
    except Exception:
        logger.exception("probe listener: the application failed on %s", request.path_info)
        return _plain(500, "internal server error")
    return _serialize(status, headers, body, head=request.method == "HEAD")


def _call(application: WSGIApplication, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """Run the WSGI application; its status, headers and whole body (probe answers are small)."""
    started: list[tuple[str, list[tuple[str, str]]]] = []
    chunks: list[bytes] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], object]:
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
    status, headers = started[0]
    return status, headers, b"".join(chunks)


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


def _send(connection: socket.socket, data: bytes, *, timeout: float) -> None:
    connection.settimeout(timeout)
    connection.sendall(data)


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
