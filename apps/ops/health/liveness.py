"""Whether this process can still serve: the only state ``/live`` reads.

Liveness touches no database, cache, breaker or network; it fails only after code in this process
decided the process is beyond repair (a corrupted in-memory state, a wedged worker pool) and called
``mark_broken()``. Kubernetes then restarts the container. Draining is not "broken": ``/live``
stays 200 while the process drains.

No Django import here: the WSGI-level ``/live`` handler reads this before Django runs.
"""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_broken_reason: str | None = None


def mark_broken(reason: str) -> None:
    """Make ``/live`` answer 503 from now on, so the kubelet restarts this container."""
    global _broken_reason
    with _lock:
        if _broken_reason is None:
            logger.error("process marked broken; liveness now fails: %s", reason)
        _broken_reason = reason or "marked broken"


def broken_reason() -> str | None:
    """Why the process was marked broken, or None while it is alive."""
    return _broken_reason


def reset() -> None:
    """Clear the broken mark (tests, or code that repaired the process)."""
    global _broken_reason
    with _lock:
        _broken_reason = None
