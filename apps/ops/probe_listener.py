"""The probe listener: ``/live``, ``/ready`` and ``/health`` on a port of their own (``PROBE_PORT``).

Why a port of their own: gunicorn's gthread worker hands a connection to a request thread as soon
as its first bytes arrive and then reads the rest of the request blocking. Clients that send their
headers slowly therefore hold every request thread of a pod (20 of them hold 2 workers x 4
threads), the kubelet's probes wait in the accept queue behind them, miss their 2 s timeout, and the
kubelet restarts a pod that was only busy. Here the probes have their own listening socket and their
own threads, bounded in number and in time, so nothing sent to the main port delays them, and a
slow client on this port cannot hold anything for long either.

What this module owns:

- the listening socket: :func:`open_listener` in the gunicorn master before the workers fork (they
  inherit it), :func:`close_listener` when the master exits. It is not one of gunicorn's listeners,
  so the drain, which closes those, leaves it open: each worker answers probes until it exits.
- in each worker, :func:`serve_in_background`: a daemon thread accepting on that socket, each
  connection served by a short-lived thread of its own, at most ``MAX_CONNECTIONS`` at a time (one
  more is closed at once), the request read within ``REQUEST_TIMEOUT`` seconds in all; and
  :func:`stop_serving` as the worker exits: it finishes the probes it took and takes no more;
- a minimal HTTP/1.x server: one request per connection, ``Connection: close``. GET and HEAD of the
  probe paths go to the worker's WSGI application (its ``ProbeMiddleware`` answers them, so the
  answers are those of the main port, draining included); any other path gets 404, another method
  405, a malformed request 400.

Only the standard library, and no Django import: the gunicorn master imports this module.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

logger = logging.getLogger(__name__)

WSGIApplication = Callable[[dict[str, Any], Callable[..., Callable[[bytes], object]]], Iterable[bytes]]

# The paths ProbeMiddleware answers (apps/ops/probes.py, which cannot be imported here: it needs Django).
PROBE_PATHS = frozenset({"/live", "/live/", "/ready", "/ready/", "/health", "/health/"})
ALLOWED_METHODS = ("GET", "HEAD")
# Probers are few (the kubelet sends one probe at a time per kind); more concurrent connections than
# this are not probes worth a thread.
MAX_CONNECTIONS = 8
# The kubelet's timeoutSeconds is 2: a request that has not arrived by then is not worth answering.
REQUEST_TIMEOUT = 2.0
# A probe request is a request line and a few headers; a token or a session cookie fits easily.
MAX_HEAD_BYTES = 8192
MAX_HEADERS = 100
# Bytes of an unexpected request body read (and dropped) before closing, so the close sends a FIN
# rather than a reset that could destroy the response before the client read it.
_MAX_DISCARD_BYTES = 65536
_DISCARD_SECONDS = 0.5
_BACKLOG = 64

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(rb"HTTP/1\.[0-9]")
_TARGET_FORBIDDEN = re.compile(rb"[\x00-\x20\x7f-\xff]")
_VALUE_FORBIDDEN = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_LINE_END = re.compile(rb"\r?\n")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
# Set by the application or meaningless on a one-request connection: the server writes its own.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade"})

_REASONS = {
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}

# The master's listening socket (inherited by the workers through fork) and the address it was asked for.
_listener: socket.socket | None = None
_listener_address: tuple[str, int] | None = None


# --- The listening socket (gunicorn master) ----------------------------------------------------


def open_listener(host: str, port: int) -> socket.socket:
    """Listen on ``host:port`` for probes; call in the gunicorn master before it forks the workers.

    Calling it again with the same address keeps the socket (a configuration reload); with another
    address the old socket is closed in this process. ``SO_REUSEPORT`` lets a master re-executed by
    USR2 listen on the port while the old master still does: the kernel then shares the connections
    between both until the old one exits. ``OSError`` if the port cannot be had.
    """
    global _listener, _listener_address
    if _listener is not None and _listener_address == (host, port):
        return _listener
    close_listener()
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(_BACKLOG)
        # Non-blocking for every process sharing it: the workers wait for connections in select,
        # and the one that loses the race for a connection must not then block in accept.
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    _listener, _listener_address = sock, (host, port)
    return sock


def listener() -> socket.socket | None:
    """The probe listening socket of this process (inherited in a worker), or None."""
    return _listener


def close_listener() -> None:
    """Close this process's copy of the listening socket (no error if there is none).

    The socket stops listening once every process holding it closed it or exited: closing the
    master's copy leaves the workers serving.
    """
    global _listener, _listener_address
    if _listener is not None:
        _listener.close()
    _listener = _listener_address = None


# --- Serving (gunicorn worker) -----------------------------------------------------------------

# This worker's server, once serve_in_background started it.
_server: ProbeServer | None = None


def serve_in_background(
    application: WSGIApplication,
    *,
    max_connections: int = MAX_CONNECTIONS,
    request_timeout: float = REQUEST_TIMEOUT,
) -> ProbeServer | None:
    """Answer probes on the inherited listening socket from a daemon thread; None without a socket.

    Call once per worker, after the application is loaded; :func:`stop_serving` before it exits.
    """
    global _server
    if _listener is None:
        return None
    _server = ProbeServer(
        _listener, application, max_connections=max_connections, request_timeout=request_timeout
    )
    _server.start()
    return _server


def stop_serving(timeout: float = 1.0) -> None:
    """Take no more probes in this process; wait at most ``timeout`` s for those being answered.

    For a worker about to exit: a probe it accepted is answered rather than cut off by the exit, and
    the probes arriving meanwhile wait in the socket's queue for another worker.
    """
    if _server is not None:
        _server.stop(timeout)


class ProbeServer:
    """Accepts on ``listener`` and serves each connection in a thread of its own."""

    def __init__(
        self,
        listener: socket.socket,
        application: WSGIApplication,
        *,
        max_connections: int = MAX_CONNECTIONS,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self.listener = listener
        self.application = application
        self.max_connections = max_connections
        self.request_timeout = request_timeout
        self._active = 0
        self._idle = threading.Condition()
        self._stopping = threading.Event()
        self._wakeup_read, self._wakeup_write = socket.socketpair()
        self._thread = threading.Thread(target=self._accept_loop, name="probe-listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop accepting; wait at most ``timeout`` s for the connections being served."""
        deadline = time.monotonic() + timeout
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._wakeup_write.send(b"x")
        self._thread.join(max(deadline - time.monotonic(), 0))
        with self._idle:
            self._idle.wait_for(lambda: self._active == 0, timeout=max(deadline - time.monotonic(), 0))

    def _accept_loop(self) -> None:
        # Every worker waits on the same socket; the kernel wakes all of them for a connection and
        # one gets it (the socket is non-blocking, the others get EAGAIN). Waiting in select rather
        # than in accept lets stop() wake this thread at once.
        with selectors.DefaultSelector() as selector:
            selector.register(self.listener, selectors.EVENT_READ)
            selector.register(self._wakeup_read, selectors.EVENT_READ)
            while not self._stopping.is_set():
                selector.select()
                if self._stopping.is_set():
                    break
                try:
                    connection, peer = self.listener.accept()
                except (BlockingIOError, InterruptedError):
                    continue  # another worker took it
                except OSError as exc:
                    # Out of file descriptors or memory: retrying at once would spin.
                    logger.warning("probe listener cannot accept: %s", exc)
                    self._stopping.wait(0.1)
                    continue
                self._dispatch(connection, peer)
        self._wakeup_read.close()
        self._wakeup_write.close()

    def _dispatch(self, connection: socket.socket, peer: tuple[Any, ...]) -> None:
        with self._idle:
            if self._active >= self.max_connections:
                # More concurrent connections than probers make: these are not probes that
                # matter, and waiting for a free thread would let them hold the accept loop.
                connection.close()
                return
            self._active += 1
        try:
            threading.Thread(target=self._serve, args=(connection, peer), name="probe", daemon=True).start()
        except RuntimeError:  # no thread to be had
            connection.close()
            self._done()

    def _done(self) -> None:
        with self._idle:
            self._active -= 1
            self._idle.notify_all()

    def _serve(self, connection: socket.socket, peer: tuple[Any, ...]) -> None:
        try:
            self.handle(connection, peer)
        except OSError:
            pass  # the client went away or stalled past the timeout: nothing to answer
        except Exception:
            logger.exception("probe listener: unexpected error serving %s", peer[0])
        finally:
            connection.close()
            self._done()

    def handle(self, connection: socket.socket, peer: tuple[Any, ...]) -> None:
        """Read one request and answer it; the caller closes the connection."""
        deadline = time.monotonic() + self.request_timeout
        try:
            head, rest = _read_head(connection, deadline)
        except _Reject as reject:
            _send(connection, _plain(reject.status, reject.message), deadline=time.monotonic() + 1)
            _discard_input(connection)  # what the client is still sending
            return
        if head is None:
            return  # connected and closed (a TCP check) or sent nothing in time
        try:
            request = _parse(head)
        except _Reject as reject:
            response = _plain(reject.status, reject.message)
        else:
            response = self._respond(request, connection, peer)
        # The request had its own deadline; writing the small answer gets a fresh one.
        _send(connection, response, deadline=time.monotonic() + self.request_timeout)
        if rest or _has_body(head):
            _discard_input(connection)

    def _respond(self, request: _Request, connection: socket.socket, peer: tuple[Any, ...]) -> bytes:
        if request.path_info not in PROBE_PATHS:
            return _plain(404, "not found: this port answers /live, /ready and /health only")
        if request.method not in ALLOWED_METHODS:
            return _plain(405, "method not allowed: GET or HEAD", [("Allow", ", ".join(ALLOWED_METHODS))])
        local = connection.getsockname()
        environ = request.environ(server=(str(local[0]), int(local[1])), peer=peer)
        try:
            status, headers, body = _call(self.application, environ)
        except Exception:
            logger.exception("probe listener: the application failed on %s", request.path_info)
            return _plain(500, "internal server error")
        return _serialize(status, headers, body, head=request.method == "HEAD")


# --- HTTP/1.x, one request per connection ------------------------------------------------------


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
    if len(parts) != 3:
        raise _Reject(400, "malformed request line")
    method, target, version = parts
    if not _TOKEN.fullmatch(method) or not _VERSION.fullmatch(version):
        raise _Reject(400, "malformed request line")
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
        # No space before the colon, no line folding (RFC 9112 section 5): both are smuggling tools.
        if not colon or not _TOKEN.fullmatch(name):
            raise _Reject(400, "malformed header field")
        value = value.strip(b" \t")
        if _VALUE_FORBIDDEN.search(value):
            raise _Reject(400, "malformed header field")
        headers.append((name.decode("ascii"), value.decode("latin-1")))
    return _Request(
        method.decode("ascii"),
        target.decode("ascii"),
        version.decode("ascii"),
        # PEP 3333: PATH_INFO is the decoded path, its bytes as latin-1 characters.
        unquote_to_bytes(path).decode("latin-1"),
        query.decode("ascii"),
        headers,
    )


def _has_body(head: bytes) -> bool:
    """Whether the request head announces a body (a non-zero Content-Length or Transfer-Encoding)."""
    for line in _LINE_END.split(head)[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"", b"0")):
            return True
    return False


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
        close = getattr(result, "close", None)
        if close is not None:
            close()  # Django sends request_finished here: the thread's database connections close
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
    return _serialize(f"{status} {_REASONS[status]}", headers, f"{message}\n".encode(), head=False)


def _send(connection: socket.socket, data: bytes, *, deadline: float) -> None:
    connection.settimeout(max(deadline - time.monotonic(), 0.01))
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
