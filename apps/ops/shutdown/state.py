"""The drain state of this process: announced (shared with the workers), stopping, requests in flight."""

from __future__ import annotations

import itertools
import mmap
import threading
import time
from collections import Counter
from typing import NamedTuple

# One byte shared by the master and its workers (MAP_SHARED | MAP_ANONYMOUS, inherited by fork): every
# worker, one booted while it is set too, sees the announce at once, for a byte read (no file to stat).
_shared_flag: mmap.mmap | None = None
_stopping_since: float | None = None  # time.monotonic() when this process got SIGTERM


class InFlightRequest(NamedTuple):
    method: str
    path: str
    started: float  # time.monotonic()


_in_flight: dict[int, InFlightRequest] = {}
_request_ids = itertools.count()
counts: Counter[str] = Counter()  # in_flight_at_stop, completed, refused
_counts_lock = threading.Lock()


def create_shared_state() -> None:
    """Create the drain flag; in the gunicorn master before any fork, so that the workers share it."""
    global _shared_flag
    if _shared_flag is None:
        _shared_flag = mmap.mmap(-1, mmap.PAGESIZE)


def announce() -> None:
    """Every process sharing the flag reports draining from now on (while still serving)."""
    create_shared_state()
    _shared_flag[0] = 1


def is_draining() -> bool:
    """True once the server announced its drain (``/ready`` answers 503) or this process stops."""
    return _stopping_since is not None or (_shared_flag is not None and _shared_flag[0] != 0)


def begin_stopping() -> None:
    """This process takes no new work (called from the SIGTERM handler: no locks, no logging)."""
    global _stopping_since
    if _stopping_since is None:
        counts["in_flight_at_stop"] = len(_in_flight)
        _stopping_since = time.monotonic()


def seconds_stopping() -> float | None:
    """Seconds since this process was told to stop; None while it serves."""
    return None if _stopping_since is None else time.monotonic() - _stopping_since


def admit(method: str, path: str) -> int | None:
    """Track a request until :func:`finished`; None (counted as refused) once this process stops."""
    if _stopping_since is not None:
        with _counts_lock:
            counts["refused"] += 1
        return None
    key = next(_request_ids)
    _in_flight[key] = InFlightRequest(method, path, time.monotonic())
    return key


def finished(key: int) -> None:
    del _in_flight[key]
    if _stopping_since is not None:
        with _counts_lock:
            counts["completed"] += 1


def in_flight_requests() -> list[InFlightRequest]:
    """Requests this process is working on, oldest first."""
    return sorted(_in_flight.copy().values(), key=lambda request: request.started)


def reset() -> None:
    """Back to serving, counts at zero (for tests; a server process never goes back)."""
    global _stopping_since
    if _shared_flag is not None:
        _shared_flag[0] = 0
    _stopping_since = None
    _in_flight.clear()
    counts.clear()
