"""Named circuit breakers around every external call, with state shared through Redis (or the database).

``get_breaker(name)`` gives the :class:`Breaker` (``breaker.call(func, ...)`` or ``with breaker.calling():``;
rejected calls raise :class:`CircuitOpenError`); ``all_statuses()`` never raises. Configuration, shared
state and the differences from pybreaker: docs/ARCHITECTURE.md, "Circuit breakers".
"""

from __future__ import annotations

# Re-exported: the names of the public API besides the functions below.
from .breaker import Breaker, CircuitOpenError  # noqa: F401
from .registry import registry
from .status import STATE_CLOSED, STATE_CODES, STATE_HALF_OPEN, STATE_OPEN, BreakerStatus  # noqa: F401

get_breaker = registry.get
all_statuses = registry.statuses


def breaker_status(name: object) -> BreakerStatus | None:
    """Status of one known breaker, or None (never creates one)."""
    return next((status for status in registry.statuses() if status.name == name), None)


def is_known(name: object) -> bool:
    """Whether a breaker of that name is configured or has been used by any process."""
    return breaker_status(name) is not None


def reset_breaker(name: str, *, reason: str) -> BreakerStatus:
    """Close a known breaker and zero its counters everywhere; its status *before* (callers check
    :func:`is_known` first: this creates the breaker object in this process)."""
    return registry.get(name).reset(reason)
