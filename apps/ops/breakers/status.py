"""What a circuit breaker looks like from outside: a plain, immutable status value."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

STATE_CLOSED = "closed"
STATE_OPEN = "open"
STATE_HALF_OPEN = "half-open"
STATES = (STATE_CLOSED, STATE_OPEN, STATE_HALF_OPEN)

# Numeric code of each state for the ``circuit_breaker_state`` gauge.
STATE_CODES = {STATE_CLOSED: 0, STATE_OPEN: 1, STATE_HALF_OPEN: 2}


@dataclass(frozen=True)
class BreakerStatus:
    """A breaker's state and configuration at one moment.

    ``shared`` is True when the state was read from Redis (the same in every worker and pod) and
    False when it is this process's own state (no ``REDIS_URL``, or Redis unreachable right now).
    """

    name: str
    state: str
    failure_count: int
    success_count: int
    fail_max: int
    reset_timeout: float
    success_threshold: int
    request_timeout: float
    opened_at: datetime | None
    shared: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "failure_count": self.failure_count,
            "success_count": self.success_count,
            "fail_max": self.fail_max,
            "reset_timeout": self.reset_timeout,
            "success_threshold": self.success_threshold,
            "request_timeout": self.request_timeout,
            "opened_at": self.opened_at.isoformat() if self.opened_at else None,
            "shared": self.shared,
        }
