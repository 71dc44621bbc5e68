"""Graceful shutdown of a server process: drain state, requests in flight, cleanup tasks, drain guard.

A server goes through three phases when it is told to stop (``deploy/gunicorn.conf.py`` drives them):

1. **announcing**: :func:`is_draining` is true (``/ready`` answers 503, so load balancers stop routing
   here) while every request is still served. The gunicorn master flips one byte of memory it shared
   with its workers before forking them (:func:`create_shared_state`, :func:`announce`), so every
   worker, including one booted during the announce phase, sees it at once, for the price of reading
   that byte: no file to stat per request. Responses of this phase close their connection, so clients
   on kept-alive connections reconnect through their load balancer.
2. **stopping**: this process got SIGTERM (:func:`begin_stopping`). :class:`DrainMiddleware` answers
   requests that still arrive with 503, ``Retry-After`` and ``Connection: close`` before any view runs
   (a refused write never starts); requests already in flight complete.
3. **exiting**: :func:`finish_process` runs the cleanup tasks (:func:`register_cleanup`), each bounded
   in time, errors logged and never raised, then logs one summary line for the process.

Imports no Django at module level: the gunicorn master imports this module before it forks.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import mmap
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

logger = logging.getLogger(__name__)

# Key of the WSGI environ entry, set by the server integration, holding a callable that makes the
# server close the connection after the current response (gunicorn drops a ``Connection`` header
# set by the application, as PEP 3333 asks).
CLOSE_CONNECTION_ENVIRON_KEY = "dotmac.close_connection"
# A refused client should retry at once: another instance can take the request now.
RETRY_AFTER_SECONDS = 1

_SERVING = 0
_ANNOUNCING = 1

# One byte shared by the master and its workers (MAP_SHARED | MAP_ANONYMOUS, inherited by fork).
_shared_phase: mmap.mmap | None = None
# Announce without a master (one process: runserver, tests).
_announced_here = False
# time.monotonic() when this process was told to stop; None while it serves.
_stopping_since: float | None = None


@dataclass(frozen=True)
class InFlightRequest:
    method: str
    path: str
    started: float  # time.monotonic()

    def seconds(self) -> float:
        return time.monotonic() - self.started


@dataclass
class _DrainCounts:
    in_flight_at_stop: int = 0
    completed_after_stop: int = 0
    refused: int = 0


_in_flight: dict[int, InFlightRequest] = {}
_request_ids = itertools.count()
_counts = _DrainCounts()
_counts_lock = threading.Lock()


# --- Drain state ---------------------------------------------------------------------------


def create_shared_state() -> None:
    """Create the drain flag shared with worker processes; call in the master before any fork."""
    global _shared_phase
    if _shared_phase is None:
        _shared_phase = mmap.mmap(-1, mmap.PAGESIZE)


def announce() -> None:
    """Start the announce phase: every process sharing the state reports draining from now on."""
    global _announced_here
    if _shared_phase is not None:
        _shared_phase[0] = _ANNOUNCING
    else:
        _announced_here = True


def is_draining() -> bool:
    """True once the server announced it is stopping (``/ready`` must answer 503), or this process stops.

    Cheap enough for every request: two module globals and, under gunicorn, one byte of shared memory.
    """
    return (
        _stopping_since is not None
        or _announced_here
        or (_shared_phase is not None and _shared_phase[0] != _SERVING)
    )


def begin_stopping() -> None:
    """This process stops taking new work (called from the SIGTERM handler: no locks, no logging)."""
    global _stopping_since
    if _stopping_since is None:
        _counts.in_flight_at_stop = len(_in_flight)
        _stopping_since = time.monotonic()


def is_stopping() -> bool:
    """True once this process was told to stop; new requests are refused from then on."""
    return _stopping_since is not None


def in_flight_requests() -> list[InFlightRequest]:
    """Requests this process is working on, oldest first."""
    return sorted(_in_flight.copy().values(), key=lambda request: request.started)


def reset() -> None:
    """Back to serving, counts at zero (for tests; a server process never goes back)."""
    global _announced_here, _stopping_since
    if _shared_phase is not None:
        _shared_phase[0] = _SERVING
    _announced_here = False
    _stopping_since = None
    _in_flight.clear()
    with _counts_lock:
        _counts.in_flight_at_stop = _counts.completed_after_stop = _counts.refused = 0


# --- Cleanup tasks -------------------------------------------------------------------------


@dataclass(frozen=True)
class CleanupTask:
    name: str
    func: Callable[[], object]
    timeout: float


@dataclass(frozen=True)
class CleanupResult:
    name: str
    status: Literal["ok", "error", "timeout"]
    seconds: float
    error: str = ""


_cleanups: dict[str, CleanupTask] = {}


def register_cleanup(name: str, func: Callable[[], object], timeout: float = 2.0) -> None:
    """Run ``func()`` when this process exits, for at most ``timeout`` seconds.

    Tasks run newest first (like ``atexit``), so the built-in ones (database, Redis, then logs)
    run after every task registered by the application. Registering a name again replaces the
    task and makes it the newest. An error is logged, never raised; a task still running at its
    timeout is abandoned (it runs in a daemon thread) and the next one starts.
    """
    if not name:
        raise ValueError("a cleanup task needs a name")
    if not callable(func):
        raise TypeError(f"cleanup task {name!r}: {func!r} is not callable")
    if not timeout > 0:
        raise ValueError(f"cleanup task {name!r}: timeout must be positive, got {timeout!r}")
    _cleanups.pop(name, None)
    _cleanups[name] = CleanupTask(name=name, func=func, timeout=float(timeout))


def unregister_cleanup(name: str) -> None:
    """Forget the task called ``name`` (no error if there is none)."""
    _cleanups.pop(name, None)


def registered_cleanups() -> list[CleanupTask]:
    """The tasks in the order they will run."""
    return list(reversed(_cleanups.values()))


def run_cleanups() -> list[CleanupResult]:
    """Run every registered task, each bounded by its timeout; never raises."""
    return [_run_bounded(task) for task in registered_cleanups()]


def _run_bounded(task: CleanupTask) -> CleanupResult:
    outcome: dict[str, BaseException] = {}

    def target() -> None:
        try:
            task.func()
        except BaseException as exc:  # a cleanup task must not take the process exit down with it
            outcome["error"] = exc

    started = time.monotonic()
    thread = threading.Thread(target=target, name=f"cleanup-{task.name}", daemon=True)
    thread.start()
    thread.join(task.timeout)
    seconds = time.monotonic() - started
    if thread.is_alive():
        logger.warning(
            "cleanup task %s still running after %.1f s; abandoned",
            task.name,
            task.timeout,
            extra={"cleanup_task": task.name, "cleanup_status": "timeout"},
        )
        return CleanupResult(task.name, "timeout", seconds)
    if "error" in outcome:
        exc = outcome["error"]
        logger.error(
            "cleanup task %s failed: %s",
            task.name,
            exc,
            exc_info=(type(exc), exc, exc.__traceback__),
            extra={"cleanup_task": task.name, "cleanup_status": "error"},
        )
        return CleanupResult(task.name, "error", seconds, f"{type(exc).__name__}: {exc}")
    return CleanupResult(task.name, "ok", seconds)


def _django_ready() -> bool:
    try:
        from django.apps import apps
    except ImportError:
        return False
    return apps.ready


def close_database_connections() -> None:
    """Close every pooled connection of this process, and this thread's own connections.

    With Django's psycopg pool (the default) the pool holds the connections of every thread. With
    persistent per-thread connections (``DATABASE_POOL=false``) a thread's connection can only be
    closed by that thread; the others close with the process.
    """
    if not _django_ready():
        return
    from django.db import connections

    for alias in connections:
        connection = connections[alias]
        if getattr(connection, "pool", None) is not None:
            connection.close_pool()
        else:
            connection.close()


def close_redis_connections() -> None:
    """Disconnect the Redis connection pools of the configured caches.

    Other owners of Redis clients (for example a module keeping its own pool) register their own
    task. At exit the kernel would close the sockets anyway; closing them here makes it happen
    now, in order, and visibly in the summary line.
    """
    if not _django_ready():
        return
    from django.conf import settings
    from django.core.cache import caches

    for alias in settings.CACHES:
        cache = caches[alias]
        get_client = getattr(getattr(cache, "client", None), "get_client", None)
        if get_client is not None:
            # django-redis shares one pool per server across threads, but cache objects are
            # per thread and this task runs in a thread of its own: disconnect the pool itself.
            get_client(write=True).connection_pool.disconnect()
        else:
            cache.close()


def flush_logs() -> None:
    """Write out whatever the log handlers and standard streams still buffer."""
    handlers = list(logging.getLogger().handlers)
    for candidate in list(logging.Logger.manager.loggerDict.values()):
        handlers.extend(getattr(candidate, "handlers", ()))
    # A broken handler or a closed stream must not stop the others.
    for flushable in [*dict.fromkeys(handlers), sys.stdout, sys.stderr]:
        with contextlib.suppress(Exception):
            flushable.flush()


def _register_builtin_cleanups() -> None:
    # Registered first so they run last, logs at the very end.
    register_cleanup("logs", flush_logs, timeout=1.0)
    register_cleanup("redis", close_redis_connections, timeout=1.0)
    register_cleanup("database", close_database_connections, timeout=3.0)


def reset_cleanups() -> None:
    """Only the built-in tasks again (for tests)."""
    _cleanups.clear()
    _register_builtin_cleanups()


_register_builtin_cleanups()


# --- Process exit --------------------------------------------------------------------------


def log_requests_killed(reason: str) -> None:
    """Log each request still in flight: the process is about to be killed (``reason`` says why)."""
    for request in in_flight_requests():
        logger.error(
            "pid %d: request killed (%s): %s %s after %.2f s",
            os.getpid(),
            reason,
            request.method,
            request.path,
            request.seconds(),
            extra={
                "pid": os.getpid(),
                "killed_reason": reason,
                "method": request.method,
                "path": request.path,
                "duration_seconds": round(request.seconds(), 3),
            },
        )
    flush_logs()


def finish_process() -> list[CleanupResult]:
    """Run the cleanup tasks, then log one line summarising the drain of this process."""
    results = run_cleanups()
    still_running = in_flight_requests()
    with _counts_lock:
        counts = _DrainCounts(_counts.in_flight_at_stop, _counts.completed_after_stop, _counts.refused)
    cleanup_text = ", ".join(f"{r.name} {r.status} {r.seconds * 1000:.0f} ms" for r in results)
    cleanup_fields = {r.name: r.status for r in results}
    if _stopping_since is None:
        logger.info(
            "pid %d exiting without a drain (not stopped by SIGTERM); cleanup: %s",
            os.getpid(),
            cleanup_text,
            extra={
                "pid": os.getpid(),
                "drained": False,
                "cleanup": cleanup_fields,
                "still_running": len(still_running),
            },
        )
    else:
        drain_seconds = time.monotonic() - _stopping_since
        logger.info(
            "pid %d drained in %.2f s: %d in flight at stop, %d completed, %d refused with 503, "
            "%d still running; cleanup: %s",
            os.getpid(),
            drain_seconds,
            counts.in_flight_at_stop,
            counts.completed_after_stop,
            counts.refused,
            len(still_running),
            cleanup_text,
            extra={
                "pid": os.getpid(),
                "drained": True,
                "drain_seconds": round(drain_seconds, 3),
                "in_flight_at_stop": counts.in_flight_at_stop,
                "completed": counts.completed_after_stop,
                "refused": counts.refused,
                "still_running": len(still_running),
                "cleanup": cleanup_fields,
            },
        )
    flush_logs()
    return results


# --- Middleware ----------------------------------------------------------------------------


def _close_connection(request) -> None:
    close = request.META.get(CLOSE_CONNECTION_ENVIRON_KEY)
    if close is not None:
        close()


def _refusal(request):
    from django.http import HttpResponse, JsonResponse

    message = "The server is restarting; retry the request."
    if "application/json" in request.META.get("HTTP_ACCEPT", ""):
        response = JsonResponse({"error": "shutting_down", "detail": message}, status=503)
    else:
        response = HttpResponse(message + "\n", status=503, content_type="text/plain; charset=utf-8")
    response["Content-Length"] = str(len(response.content))
    # Counted in the process's drain summary; one ERROR line per refusal from django.request would
    # bury it (Django's log_response skips a response marked as logged).
    response._has_been_logged = True
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


class DrainMiddleware:
    """Refuses requests reaching a stopping process before any view runs; tracks those in flight.

    A refused request gets 503 with ``Retry-After`` and ``Connection: close`` (asked of the server
    through :data:`CLOSE_CONNECTION_ENVIRON_KEY`), so nothing of it was processed and the client may
    safely retry it elsewhere, a POST included. While the server announces its drain, responses
    close their connection too.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        if _stopping_since is not None:
            with _counts_lock:
                _counts.refused += 1
            _close_connection(request)
            return _refusal(request)
        key = next(_request_ids)
        _in_flight[key] = InFlightRequest(request.method, request.path, time.monotonic())
        try:
            response = self.get_response(request)
        finally:
            del _in_flight[key]
            if _stopping_since is not None:
                with _counts_lock:
                    _counts.completed_after_stop += 1
        if is_draining():
            _close_connection(request)
        return response
