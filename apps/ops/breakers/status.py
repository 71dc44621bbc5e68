"""A breaker's states, and its status as seen from outside: a plain, immutable value."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pybreaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN

from .config import BreakerConfig

# The value of each state in the ``circuit_breaker_state`` gauge (dashboards and alert rules use them).
STATE_CODES = {STATE_CLOSED: 0, STATE_OPEN: 1, STATE_HALF_OPEN: 2}

StoredState = tuple[str, int, int, datetime | None]  # state, failures, successes, opened_at
NEVER_USED: StoredState = (STATE_CLOSED, 0, 0, None)


@dataclass(frozen=True)
class BreakerStatus:
    """A breaker's state and configuration at one moment.

    ``shared`` is True when the state was read from the shared store (Redis, or the database without
    ``REDIS_URL``: the same in every worker) and False when it is this process's own state (the store
    unreachable right now).
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

    @classmethod
    def of(cls, name: str, config: BreakerConfig, stored: StoredState, *, shared: bool) -> BreakerStatus:
        state, failures, successes, opened_at = stored
        return cls(
            name=name,
            state=state,
            failure_count=failures,
            success_count=successes,
            # pybreaker keeps the last opening time after closing: it means nothing then.
            opened_at=None if state == STATE_CLOSED else opened_at,
            shared=shared,
            **dataclasses.asdict(config),
        )

    def as_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["opened_at"] = self.opened_at.isoformat() if self.opened_at else None
        return values
