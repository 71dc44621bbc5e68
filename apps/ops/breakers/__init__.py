"""Named circuit breakers around every external call, with state shared through Redis.

Public API:

- ``get_breaker(name)`` → the :class:`Breaker` (created on first use); ``breaker.call(func, ...)``
  or ``with breaker.calling(): ...``. Rejected calls raise :class:`CircuitOpenError`.
- ``all_statuses()`` → list of :class:`BreakerStatus` for every known breaker: one Redis round
  trip, never raises (probes and the metrics collector call it at request/scrape time).
- ``breaker_status(name)``, ``is_known(name)``, ``reset_breaker(name, reason=...)``.

Configuration: defaults (5 failures, 60 s, 3 successes, 30 s) < ``settings.CIRCUIT_BREAKERS`` <
overrides edited in the admin. Without ``REDIS_URL`` state is per process (``shared`` is False).
"""

from __future__ import annotations

# Re-exported: the names of the public API besides the functions below.
from .breaker import Breaker, CircuitOpenError  # noqa: F401
from .registry import registry
from .status import STATE_CLOSED, STATE_CODES, STATE_HALF_OPEN, STATE_OPEN, BreakerStatus  # noqa: F401


def get_breaker(name: str) -> Breaker:
    """The breaker called ``name`` (created on first use). ValueError for an invalid name."""
    return registry.get(name)


def all_statuses() -> list[BreakerStatus]:
    """Status of every known breaker, sorted by name. Never raises."""
    return registry.statuses()


def breaker_status(name: str) -> BreakerStatus | None:
    """Status of one known breaker, or None (never creates one)."""
    return next((status for status in registry.statuses() if status.name == name), None)


def is_known(name: str) -> bool:
    """Whether a breaker of that name is configured or has been used by any process."""
    return registry.is_known(name)


def reset_breaker(name: str, *, reason: str) -> BreakerStatus:
    """Close a known breaker and zero its counters everywhere; returns its status *before*.

    Callers check :func:`is_known` first (this creates the breaker object in this process).
    """
    return registry.get(name).reset(reason)
