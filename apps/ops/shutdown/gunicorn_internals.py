"""Every use of gunicorn's internals in the project.

gunicorn's public extension points are its settings and server hooks, whose documentation shows
``server.log``, ``worker.log`` and ``worker.pid`` of the objects the hooks get, nothing else. The
master has no hook for SIGTERM (its main loop calls ``handle_<signal>()`` on the Arbiter), a worker
none for SIGTERM nor for its loaded application, and ``access_log_format`` escapes no value (no JSON).
Used here only:

- ``Arbiter``: ``handle_term`` (replaced), ``wait_for_signals``, ``handle_quit``, ``handle_usr1``,
  ``reap_workers``, ``murder_workers``, ``manage_workers``, ``kill_workers``, ``WORKERS``,
  ``LISTENERS`` and their ``sock``, ``master_pid``, ``reexec_pid``, ``systemd``,
  ``cfg.graceful_timeout``, ``cfg.reuse_port``; ``gunicorn.sock.close_sockets``;
- ``Worker``: ``alive``, ``booted``, ``wsgi`` (wrapped); ``start_response.__self__.force_close``;
- ``gunicorn.glogging.Logger``: ``access`` (overridden), ``access_log_enabled``, ``access_log``, and
  the response's ``status``, ``headers``, ``sent``; ``gunicorn.util.parse_address``.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime

from gunicorn import sock
from gunicorn.glogging import Logger
from gunicorn.util import parse_address

WRITTEN_FOR = "gunicorn==27.0.1"  # tests/test_library_internals.py fails first on another version


class Master:
    """The gunicorn master (its ``Arbiter``), driven by the drain as its main loop would drive it."""

    def __init__(self, arbiter) -> None:
        self.arbiter = arbiter
        self.log = arbiter.log
        self.wait_for_signals = arbiter.wait_for_signals  # the signal handlers only queue the signals
        self.stop_now = arbiter.handle_quit  # gunicorn's SIGQUIT: quick stop, raises StopIteration
        self.reopen_log_files = arbiter.handle_usr1  # gunicorn's SIGUSR1, forwarded to the workers
        self.reap_workers = arbiter.reap_workers  # runs the child_exit hook for each
        self.signal_workers = arbiter.kill_workers  # forgets the workers already gone

    def handle_sigterm_with(self, handler: Callable[[], None]) -> None:
        self.arbiter.handle_term = handler

    def keep_workers(self) -> None:
        """What the main loop does between signals: reap, kill the hung (heartbeat), replace the dead."""
        self.arbiter.reap_workers()
        self.arbiter.murder_workers()
        self.arbiter.manage_workers()

    def worker_pids(self) -> list[int]:
        return sorted(self.arbiter.WORKERS)

    def graceful_timeout(self) -> int:
        return self.arbiter.cfg.graceful_timeout  # with the command line's and environment's overrides

    def is_reexecuted(self) -> bool:
        return bool(self.arbiter.master_pid)  # started by the USR2 of a master still running

    def owns_listeners(self) -> bool:
        """False while they are shared: with a re-executed master (USR2), systemd or SO_REUSEPORT peers
        (the test of gunicorn's own stop() before unlinking them)."""
        a = self.arbiter
        return a.reexec_pid == a.master_pid == 0 and not a.systemd and not a.cfg.reuse_port

    def listening_sockets(self) -> list[socket.socket]:
        return [listener.sock for listener in self.arbiter.LISTENERS]

    def close_listeners(self) -> None:
        """As gunicorn's own stop() does, which then finds none left to close."""
        sock.close_sockets(self.arbiter.LISTENERS, unlink=self.owns_listeners())
        self.arbiter.LISTENERS = []


def bind_host(bind: str) -> str | None:
    """The host of a ``bind`` address (gunicorn's parser of its syntax); None for ``unix:``, ``fd://``."""
    address = parse_address(bind)
    return address[0] if isinstance(address, tuple) else None


def worker_told_to_stop(worker) -> bool:
    return not worker.alive  # gunicorn's SIGTERM handler clears it


def worker_booted(worker) -> bool:
    return worker.booted  # the application loaded and post_worker_init ran


def close_connection_through(worker, environ_key: str) -> Callable:
    """Wrap the worker's WSGI application (no hook hands it over) so that calling
    ``environ[environ_key]`` makes gunicorn close the connection after the response: it drops an
    application's ``Connection`` header, as PEP 3333 asks, and its ``start_response`` is a method of
    the response, which has ``force_close``. Not under another caller (the probe listener's)."""
    wrapped = worker.wsgi

    def application(environ, start_response):
        if (close := getattr(getattr(start_response, "__self__", None), "force_close", None)) is not None:
            environ[environ_key] = close
        return wrapped(environ, start_response)

    worker.wsgi = application
    return application


class JsonAccessLogger(Logger):
    """gunicorn's logger with one JSON object per access-log line (the query string is left out)."""

    def access(self, resp, req, environ, request_time) -> None:
        if not self.access_log_enabled:
            return
        status = str(resp.status or "").split(None, 1)[0]
        method = environ.get("REQUEST_METHOD", "-")
        path = environ.get("PATH_INFO", "-")
        entry = {
            "time": datetime.now(tz=UTC).isoformat(timespec="milliseconds"),
            "level": "INFO",
            "logger": "gunicorn.access",
            "message": f"{method} {path} {status}",
            "method": method,
            "path": path,
            "status": int(status) if status.isdigit() else status,
            "bytes": getattr(resp, "sent", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "remote_addr": environ.get("REMOTE_ADDR", "-"),
            "user_agent": environ.get("HTTP_USER_AGENT", ""),
            "request_id": next((v for k, v in resp.headers if k.lower() == "x-request-id"), None),
            "pid": os.getpid(),
        }
        try:
            self.access_log.info(json.dumps(entry, default=str, ensure_ascii=False))
        except Exception:
            self.exception("access log entry failed")
