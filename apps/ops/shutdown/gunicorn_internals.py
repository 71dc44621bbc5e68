"""Every use of gunicorn's internals in the project.

gunicorn's public extension points are its settings and server hooks, whose documentation shows
``server.log``, ``worker.log`` and ``worker.pid`` and nothing else of the objects the hooks get. Used
here only, each with the reason no public way exists:

- ``Arbiter``: ``handle_term`` (replaced), ``wait_for_signals``, ``handle_quit``, ``handle_usr1``,
  ``reap_workers``, ``murder_workers``, ``manage_workers``, ``kill_workers``, ``WORKERS``,
  ``LISTENERS`` and their ``sock``, ``master_pid``, ``reexec_pid``, ``systemd``,
  ``cfg.graceful_timeout``, ``cfg.reuse_port``; ``gunicorn.sock.close_sockets``;
- ``Worker``: ``alive``, ``booted``, ``wsgi``; the response behind ``start_response``: ``force_close``;
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

# tests/ops/test_shutdown_state.py fails first when another version is installed.
WRITTEN_FOR = "gunicorn==27.0.1"


class Master:
    """The gunicorn master (its ``Arbiter``) as the drain drives it. No hook runs on the master's
    SIGTERM, and the drain must do what the main loop does between signals, with its means."""

    def __init__(self, arbiter) -> None:
        self.arbiter = arbiter
        self.log = arbiter.log

    def handle_sigterm_with(self, handler: Callable[[], None]) -> None:
        self.arbiter.handle_term = handler  # the main loop calls handle_<signal>() on the instance

    def wait_for_signals(self, timeout: float) -> list[int]:
        return self.arbiter.wait_for_signals(timeout=timeout)  # its signal handlers only queue them

    def stop_now(self) -> None:
        self.arbiter.handle_quit()  # gunicorn's SIGQUIT: SIGQUIT to the workers, exit (StopIteration)

    def reopen_log_files(self) -> None:
        self.arbiter.handle_usr1()  # gunicorn's SIGUSR1, forwarded to the workers

    def keep_workers(self) -> None:
        self.arbiter.reap_workers()
        self.arbiter.murder_workers()  # heartbeat timeouts
        self.arbiter.manage_workers()  # replace the dead

    def reap_workers(self) -> None:
        self.arbiter.reap_workers()  # runs the child_exit hook for each

    def worker_pids(self) -> list[int]:
        return sorted(self.arbiter.WORKERS)

    def signal_workers(self, sig: int) -> None:
        self.arbiter.kill_workers(sig)  # forgets a worker already gone, as the main loop does

    def graceful_timeout(self) -> float:
        return self.arbiter.cfg.graceful_timeout  # after command-line and environment overrides

    def is_reexecuted(self) -> bool:
        return bool(self.arbiter.master_pid)  # started by the USR2 of a master still running

    def owns_listeners(self) -> bool:
        """Not when they are shared with a re-executed master (USR2), systemd or SO_REUSEPORT peers
        (the test gunicorn's stop() makes before unlinking them)."""
        a = self.arbiter
        return a.reexec_pid == a.master_pid == 0 and not a.systemd and not a.cfg.reuse_port

    def listening_sockets(self) -> list[socket.socket]:
        return [listener.sock for listener in self.arbiter.LISTENERS]

    def close_listeners(self) -> None:
        # As gunicorn's own stop() does, which then finds nothing left to close.
        sock.close_sockets(self.arbiter.LISTENERS, unlink=self.owns_listeners())
        self.arbiter.LISTENERS = []


def bind_host(bind: str) -> str | None:
    """The host of a ``bind`` address; None for a Unix socket or ``fd://`` (gunicorn's own parser)."""
    address = parse_address(bind)
    return address[0] if isinstance(address, tuple) else None


# --- Worker: there is no hook for its SIGTERM, nor a setting that hands the loaded application over.


def worker_told_to_stop(worker) -> bool:
    return not worker.alive  # gunicorn's SIGTERM handler clears it


def worker_booted(worker) -> bool:
    return worker.booted  # the application loaded and post_worker_init ran


def wrap_application(worker, wrap: Callable) -> Callable:
    """Replace the worker's WSGI application by ``wrap(application)``; the new one."""
    worker.wsgi = wrap(worker.wsgi)
    return worker.wsgi


def connection_closer(start_response) -> Callable[[], None] | None:
    """What makes gunicorn close the connection after this response (None under another server):
    PEP 3333 forbids a ``Connection`` header from the application, so gunicorn drops it."""
    return getattr(getattr(start_response, "__self__", None), "force_close", None)


class JsonAccessLogger(Logger):
    """gunicorn's logger with one JSON object per access-log line (the query string is left out).

    ``access_log_format`` cannot produce JSON (it escapes no value): ``access`` is overridden."""

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
