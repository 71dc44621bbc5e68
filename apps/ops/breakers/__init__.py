"""Named circuit breakers around every external call, with state shared through Redis.

Public API (stable):

- ``all_statuses()`` → list of :class:`BreakerStatus`, cheap and never raising (for probes/metrics).
"""

from __future__ import annotations

from .status import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN, BreakerStatus

__all__ = ["STATE_CLOSED", "STATE_HALF_OPEN", "STATE_OPEN", "BreakerStatus", "all_statuses"]


def all_statuses() -> list[BreakerStatus]:
    """Status of every known breaker, sorted by name. Never raises."""
    return []
