"""Every use of gunicorn's internals in the project: the master's drain, what a worker learns of it,
the access log.

gunicorn's public extension points are its settings and server hooks, whose documentation shows
``server.log``, ``worker.log`` and ``worker.pid`` of the objects the hooks get, nothing else. The
master has no hook for SIGTERM (its main loop calls ``handle_<signal>()`` on the Arbiter), a worker
none for SIGTERM nor for its loaded application, and ``access_log_format`` makes a string, not the
fields of a log record. Used here only:

- ``Arbiter``: ``handle_term`` (replaced), ``wait_for_signals``, ``handle_quit``, ``handle_usr1``,
  ``reap_workers``, ``murder_workers``, ``manage_workers``, ``kill_workers``, ``WORKERS``,
  ``LISTENERS`` and their ``sock``, ``master_pid``, ``reexec_pid``, ``systemd``,
  ``cfg.graceful_timeout``, ``cfg.reuse_port``; ``gunicorn.sock.close_sockets``;
- ``Worker``: ``booted``, ``alive``, ``wsgi`` (wrapped); ``start_response.__self__.force_close``;
- ``gunicorn.glogging.Logger``: ``access`` (overridden), ``access_log_enabled``, ``access_log``, and
  the response's ``status``, ``headers``, ``sent``; ``gunicorn.util.parse_address``.
"""

from __future__ import annotations

import array
import os
import signal
import socket
import struct
import time
from collections.abc import Callable

from gunicorn.glogging import Logger
from gunicorn.sock import close_sockets
from gunicorn.util import parse_address

from .state import announce

WRITTEN_FOR = "gunicorn==27.0.1"  # tests/test_library_internals.py fails first on another version

ABORT_GRACE_SECONDS = 1.0  # for a worker killed at the deadline to log, between SIGABRT and SIGKILL
ACCEPT_QUEUE_WAIT_SECONDS = 1.0  # at most, for the workers to accept the connections already queued
SO_ATTACH_FILTER = 26  # Linux's; Python's socket module does not name it


def drain_on_sigterm(arbiter, delay: float) -> None:
    arbiter.handle_term = MasterDrain(arbiter, delay)  # the main loop calls handle_<signal>()


def is_reexecuted(arbiter) -> bool:
    return bool(arbiter.master_pid)  # started by the USR2 of a master still running


class MasterDrain:
    """The master's SIGTERM: announce, close the door, wait for the workers, kill the late ones
    (docs/ARCHITECTURE.md, "Graceful shutdown"). gunicorn's own closes the listeners at once, resetting
    the connections queued on them. Ends with gunicorn's normal exit."""

    def __init__(self, arbiter, delay: float) -> None:
        self.arbiter = arbiter
        self.log = arbiter.log
        self.delay = delay

    def __call__(self) -> None:
        arbiter = self.arbiter
        started = time.monotonic()
        announce()
        self.log.info(
            "SIGTERM: draining; /ready answers 503 for %.1f s while requests are still served", self.delay
        )
        while (remaining := started + self.delay - time.monotonic()) > 0:
            self._handle_signals(min(remaining, 0.5))
            # Business as usual meanwhile, as in the main loop: reap, kill the hung (heartbeat), replace.
            arbiter.reap_workers()
            arbiter.murder_workers()
            arbiter.manage_workers()
        announced = time.monotonic() - started

        self._close_the_door()
        stopped, timeout = sorted(arbiter.WORKERS), arbiter.cfg.graceful_timeout
        message = "listeners closed; %d workers finish their requests in flight (at most %d s)"
        self.log.info(message, len(stopped), timeout)
        arbiter.kill_workers(signal.SIGTERM)  # forgets the workers already gone
        self._wait_for_workers(timeout)
        killed = sorted(arbiter.WORKERS)
        pids = ", ".join(map(str, killed))
        if killed:
            message = "graceful timeout (%d s): killing workers %s; they log the requests they were serving"
            self.log.error(message, timeout, pids)
            arbiter.kill_workers(signal.SIGABRT)
            self._wait_for_workers(ABORT_GRACE_SECONDS)
            arbiter.kill_workers(signal.SIGKILL)
            arbiter.reap_workers()
        self.log.info(
            "drain finished in %.2f s: announced %.2f s, %d workers stopped, %d gracefully, "
            "%d killed at the graceful deadline%s",
            time.monotonic() - started,
            announced,
            len(stopped),
            len(stopped) - len(killed),
            len(killed),
            f" (pids {pids})" if killed else "",
        )
        raise StopIteration  # gunicorn's normal exit path: halt(), on_exit, exit status 0

    def _wait_for_workers(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self.arbiter.WORKERS and (remaining := deadline - time.monotonic()) > 0:
            self._handle_signals(min(remaining, 0.1))
            self.arbiter.reap_workers()  # runs the child_exit hook for each

    def _handle_signals(self, timeout: float) -> None:
        for sig in self.arbiter.wait_for_signals(timeout):  # the signal handlers only queue the signals
            if sig == signal.SIGQUIT:
                self.log.info("SIGQUIT during the drain: stopping immediately")
                self.arbiter.handle_quit()  # gunicorn's SIGQUIT: quick stop, raises StopIteration
            elif sig == signal.SIGUSR1:
                self.arbiter.handle_usr1()  # reopens the log files, and the workers'
            elif sig != signal.SIGCHLD:  # a worker exited: the loops reap
                self.log.info(
                    "%s ignored: already draining (SIGQUIT stops immediately)", signal.Signals(sig).name
                )

    def _close_the_door(self) -> None:
        arbiter = self.arbiter
        # While the listeners are shared (with a re-executed master, systemd or SO_REUSEPORT peers: the
        # test of gunicorn's own stop()), a filter would starve their other owner and unlinking is theirs.
        owned = arbiter.reexec_pid == arbiter.master_pid == 0 and not (
            arbiter.systemd or arbiter.cfg.reuse_port
        )
        filtered = []
        for sock in [listener.sock for listener in arbiter.LISTENERS] if owned else []:
            if sock.family not in (socket.AF_INET, socket.AF_INET6):
                continue  # Unix sockets: nothing in front of them routes elsewhere
            try:
                refuse_new_handshakes(sock)
                filtered.append(sock)
            except OSError as exc:
                self.log.warning("cannot stop new connections on %s before closing it: %s", sock, exc)
        deadline = time.monotonic() + ACCEPT_QUEUE_WAIT_SECONDS
        while any(map(queued_connections, filtered)) and time.monotonic() < deadline:
            time.sleep(0.005)  # the workers are accepting; the kernel's counter is all there is to watch
        # As gunicorn's own stop() does, which then finds none left to close.
        close_sockets(arbiter.LISTENERS, unlink=owned)
        arbiter.LISTENERS = []


def refuse_new_handshakes(sock: socket.socket) -> None:
    """Drop every packet reaching a listening socket (a classic BPF program): new SYNs go unanswered,
    while the connections already queued, cloned before the filter existed, are untouched."""
    drop_all = array.array("B", struct.pack("HBBI", 0x06, 0, 0, 0))  # BPF_RET | BPF_K: accept 0 bytes
    program = struct.pack("HP", 1, drop_all.buffer_info()[0])  # struct sock_fprog {len, filter address}
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, program)


def queued_connections(sock: socket.socket) -> int:
    """Connections waiting in a listening TCP socket's accept queue (Linux: ``tcp_info.tcpi_unacked``)."""
    return struct.unpack_from("8B5I", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104))[12]


def bind_host(bind: str) -> str | None:
    """The host of a ``bind`` address (gunicorn's parser of its syntax); None for ``unix:``, ``fd://``."""
    address = parse_address(bind)
    return address[0] if isinstance(address, tuple) else None


def worker_booted(worker) -> bool:
    return worker.booted  # the application loaded and post_worker_init ran


def worker_told_to_stop(worker) -> bool:
    return not worker.alive  # gunicorn's SIGTERM handler clears it; no hook tells a worker


def close_connection_through(worker, environ_key: str) -> Callable:
    """Wrap the worker's WSGI application (no hook hands it over): ``environ[environ_key]()`` makes gunicorn
    close the connection after the response (its ``force_close``), not under another caller (the probe
    listener's)."""
    wrapped = worker.wsgi

    def application(environ, start_response):
        if (close := getattr(getattr(start_response, "__self__", None), "force_close", None)) is not None:
            environ[environ_key] = close
        return wrapped(environ, start_response)

    worker.wsgi = application
    return application


class AccessLogger(Logger):
    """gunicorn's logger writing each access line as a log record with the request's fields (the query
    string left out): a worker's Django ``LOGGING`` formats it as every other line, JSON or text."""

    def access(self, resp, req, environ, request_time) -> None:
        if not self.access_log_enabled:
            return
        status = str(resp.status or "").split(None, 1)[0]
        fields = {
            "method": environ.get("REQUEST_METHOD", "-"),
            "path": environ.get("PATH_INFO", "-"),
            "status": int(status) if status.isdigit() else status,
            "bytes": getattr(resp, "sent", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "remote_addr": _client_address(environ),
            "user_agent": environ.get("HTTP_USER_AGENT", ""),
            "request_id": next((v for k, v in resp.headers if k.lower() == "x-request-id"), "-"),
            "pid": os.getpid(),
        }
        try:
            self.access_log.info("%s %s %s", fields["method"], fields["path"], status, extra=fields)
        except Exception:
            self.exception("access log entry failed")


def _client_address(environ: dict) -> str:
    # Imported here: the master imports this module without Django; access lines are written in the
    # workers, where it is set up.
    from apps.ops.client_address import address_in

    return address_in(environ) or "-"
