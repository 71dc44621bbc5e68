"""What a process does as it exits: cleanup tasks (newest first, each bounded in time, errors logged,
never raised), a line per request a kill cuts short, one line summarising its drain."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Literal, NamedTuple

from . import state

logger = logging.getLogger(__package__)  # every line of the drain under one logger name

_tasks: dict[str, tuple[Callable[[], object], float]] = {}  # name -> (function, timeout), oldest first


class CleanupResult(NamedTuple):
    name: str
    status: Literal["ok", "error", "timeout"]
    seconds: float
    error: str = ""


def register_cleanup(name: str, func: Callable[[], object], timeout: float = 2.0) -> None:
    """Run ``func()`` when this process exits, for at most ``timeout`` seconds, newest task first (like
    ``atexit``: the built-in ones run last). Registering a name again replaces its task."""
    if not name:
        raise ValueError("a cleanup task needs a name")
    if not callable(func):
        raise TypeError(f"cleanup task {name!r}: {func!r} is not callable")
    if not timeout > 0:
        raise ValueError(f"cleanup task {name!r}: timeout must be positive, got {timeout!r}")
    _tasks.pop(name, None)
    _tasks[name] = (func, float(timeout))


def run_cleanups() -> list[CleanupResult]:
    """Run every task, newest first; one still running at its timeout is abandoned (a daemon thread)."""
    return [_run_bounded(name, func, timeout) for name, (func, timeout) in reversed(list(_tasks.items()))]


def _run_bounded(name: str, func: Callable[[], object], timeout: float) -> CleanupResult:
    raised: list[BaseException] = []

    def target() -> None:
        try:
            func()
        except BaseException as exc:  # a cleanup task must not take the process exit down with it
            raised.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=target, name=f"cleanup-{name}", daemon=True)
    thread.start()
    thread.join(timeout)
    seconds = time.monotonic() - started
    if thread.is_alive():
        extra = {"cleanup_task": name, "cleanup_status": "timeout"}
        logger.warning("cleanup task %s still running after %.1f s; abandoned", name, timeout, extra=extra)
        return CleanupResult(name, "timeout", seconds)
    if raised:
        extra = {"cleanup_task": name, "cleanup_status": "error"}
        logger.error("cleanup task %s failed: %s", name, raised[0], exc_info=raised[0], extra=extra)
        return CleanupResult(name, "error", seconds, f"{type(raised[0]).__name__}: {raised[0]}")
    return CleanupResult(name, "ok", seconds)


def log_requests_killed(reason: str) -> None:
    """Log each request still in flight: the process is about to be killed (``reason`` says why)."""
    for method, path, started in state.in_flight_requests():
        seconds = time.monotonic() - started
        fields = {
            "killed_reason": reason,
            "method": method,
            "path": path,
            "duration_seconds": round(seconds, 3),
        }
        message = "pid %d: request killed (%s): %s %s after %.2f s"
        logger.error(
            message, os.getpid(), reason, method, path, seconds, extra={"pid": os.getpid(), **fields}
        )
    flush_logs()


def finish_process() -> list[CleanupResult]:
    """Run the cleanup tasks, then log one line summarising the drain of this process."""
    results = run_cleanups()
    drain_seconds = state.seconds_stopping()
    fields = {
        "pid": os.getpid(),
        "drained": drain_seconds is not None,
        "still_running": len(state.in_flight_requests()),
        "cleanup": {result.name: result.status for result in results},
    }
    if drain_seconds is None:
        outcome = "exiting without a drain (not stopped by SIGTERM)"
    else:
        counts = {key: state.counts[key] for key in ("in_flight_at_stop", "completed", "refused")}
        fields.update(counts, drain_seconds=round(drain_seconds, 3))
        outcome = (
            f"drained in {drain_seconds:.2f} s: {counts['in_flight_at_stop']} in flight at stop, "
            f"{counts['completed']} completed, {counts['refused']} refused with 503, "
            f"{fields['still_running']} still running"
        )
    cleanup = ", ".join(f"{r.name} {r.status} {r.seconds * 1000:.0f} ms" for r in results)
    logger.info("pid %d %s; cleanup: %s", os.getpid(), outcome, cleanup, extra=fields)
    flush_logs()
    return results


# --- Built-in tasks. Django is imported in them: the gunicorn master imports this module before
# Django is configured, and a worker may serve a plain WSGI application (the benchmark's ceiling).


def close_database_connections() -> None:
    """Close each database's pool (every pooled connection), or without one (``DATABASE_POOL=false``)
    this thread's connection: another thread's can only be closed by that thread."""
    from django.apps import apps

    if not apps.ready:
        return
    from django.db import connections

    for alias in connections:
        connection = connections[alias]
        if getattr(connection, "pool", None) is not None:
            connection.close_pool()
        else:
            connection.close()


def close_redis_connections() -> None:
    """Disconnect the caches' Redis pools now, in order and visibly in the summary (not at exit)."""
    from django.apps import apps

    if not apps.ready:
        return
    from django.conf import settings
    from django.core.cache import caches

    for alias in settings.CACHES:
        cache = caches[alias]
        get_client = getattr(getattr(cache, "client", None), "get_client", None)
        if get_client is not None:
            # django-redis shares one pool per server across threads, but cache objects are per
            # thread and this task runs in a thread of its own: disconnect the pool itself.
            get_client(write=True).connection_pool.disconnect()
        else:
            cache.close()


def flush_logs() -> None:
    """Write out whatever the log handlers and standard streams still buffer."""
    handlers = list(logging.getLogger().handlers)
    for candidate in list(logging.Logger.manager.loggerDict.values()):
        handlers.extend(getattr(candidate, "handlers", ()))
    for flushable in [*dict.fromkeys(handlers), sys.stdout, sys.stderr]:
        with contextlib.suppress(Exception):  # a broken handler or closed stream must not stop the others
            flushable.flush()


def restore_builtin_tasks() -> None:
    """Only the built-in tasks, registered first so that they run last, logs at the very end."""
    _tasks.clear()
    register_cleanup("logs", flush_logs, timeout=1.0)
    register_cleanup("redis", close_redis_connections, timeout=1.0)
    register_cleanup("database", close_database_connections, timeout=3.0)


restore_builtin_tasks()
