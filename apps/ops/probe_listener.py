"""The probe listener: ``/live``, ``/ready`` and ``/health`` on a port of their own (``PROBE_PORT``),
with threads of their own, bounded in number and time, so that clients sending their headers slowly
into every request thread cannot make the kubelet's probes time out (docs/ARCHITECTURE.md, "Probe
listener"). The gunicorn master opens the socket before forking (:func:`open_listener`); each worker
serves it from a daemon thread (:func:`serve_in_background`) until it exits (:func:`stop_serving`).

Only the standard library, and no Django import: the gunicorn master imports this module.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from typing import Any

from .probe_http import WSGIApplication, serve_one_request

logger = logging.getLogger(__name__)

# Probers are few (the kubelet sends one probe at a time per kind); more concurrent connections than
# this are not probes worth a thread.
MAX_CONNECTIONS = 8
# The kubelet's timeoutSeconds is 2: a request that has not arrived by then is not worth answering.
REQUEST_TIMEOUT = 2.0
_BACKLOG = 64

# The master's listening socket (inherited by the workers through fork) and the address it was asked for.
_listener: socket.socket | None = None
_listener_address: tuple[str, int] | None = None


def open_listener(host: str, port: int) -> socket.socket:
    """Listen on ``host:port`` for probes, in the gunicorn master before it forks the workers; keep the
    socket if it already listens there (a reload). ``OSError`` if the port cannot be had.

    ``SO_REUSEPORT``: a master re-executed by USR2 listens while the old one still does, and the
    kernel shares the connections between both until the old one exits.
    """
    global _listener, _listener_address
    if _listener is not None and _listener_address == (host, port):
        return _listener
    close_listener()
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    sock = socket.create_server(
        (host, port),
        family=family,
        backlog=_BACKLOG,
        reuse_port=hasattr(socket, "SO_REUSEPORT"),
        dualstack_ipv6=family == socket.AF_INET6 and socket.has_dualstack_ipv6(),
    )
    # Non-blocking for every process sharing it: the workers wait for connections in select,
    # and the one that loses the race for a connection must not then block in accept.
    sock.setblocking(False)
    _listener, _listener_address = sock, (host, port)
    return sock


def listener() -> socket.socket | None:
    """The probe listening socket of this process (inherited in a worker), or None."""
    return _listener


def close_listener() -> None:
    """Close this process's copy of the listening socket, if any: the workers' copies keep serving."""
    global _listener, _listener_address
    if _listener is not None:
        _listener.close()
    _listener = _listener_address = None


_server: _ProbeServer | None = None


def serve_in_background(application: WSGIApplication) -> None:
    """Answer probes on the inherited listening socket, if any: once per worker, application loaded."""
    global _server
    if _listener is not None:
        _server = _ProbeServer(_listener, application)


def stop_serving(timeout: float = 1.0) -> None:
    """Take no more probes; answer those taken, waiting at most ``timeout`` s (a worker about to exit:
    the probes arriving meanwhile wait in the socket's queue for another worker)."""
    if _server is not None:
        _server.stop(timeout)


class _ProbeServer:
    """Accepts on ``listener`` and serves each connection in a thread of its own, at most
    ``MAX_CONNECTIONS`` at a time (one more is closed at once), each request within ``REQUEST_TIMEOUT``."""

    def __init__(self, listener: socket.socket, application: WSGIApplication) -> None:
        self.listener = listener
        self.application = application
        self._permits = threading.BoundedSemaphore(MAX_CONNECTIONS)  # one per connection being served
        self._stopping = threading.Event()
        self._wakeup_read, self._wakeup_write = socket.socketpair()
        self._thread = threading.Thread(target=self._accept_loop, name="probe-listener", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._wakeup_write.send(b"x")
        self._thread.join(max(deadline - time.monotonic(), 0))
        for _ in range(MAX_CONNECTIONS):  # every permit back: every connection taken is answered
            if not self._permits.acquire(timeout=max(deadline - time.monotonic(), 0)):
                break

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
        # More concurrent connections than probers make are not probes that matter, and waiting
        # for a free thread would let them hold the accept loop.
        if not self._permits.acquire(blocking=False):
            connection.close()
            return
        try:
            threading.Thread(target=self._serve, args=(connection, peer), name="probe", daemon=True).start()
        except RuntimeError:  # no thread to be had
            connection.close()
            self._permits.release()

    def _serve(self, connection: socket.socket, peer: tuple[Any, ...]) -> None:
        try:
            serve_one_request(connection, peer, self.application, timeout=REQUEST_TIMEOUT)
        except OSError:
            pass  # the client went away or stalled past the timeout: nothing to answer
        except Exception:
            logger.exception("probe listener: unexpected error serving %s", peer[0])
        finally:
            connection.close()
            self._permits.release()
