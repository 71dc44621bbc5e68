"""What every breaker does on a state change: one log line and one transitions counter increment.

Both run only in the process that made the transition (see ``breaker._transition``), so across all
workers and pods a transition is logged and counted once.
"""

from __future__ import annotations

import logging
from typing import Any

import pybreaker

from .status import STATE_OPEN

logger = logging.getLogger("apps.ops.breakers")


class TransitionLogListener(pybreaker.CircuitBreakerListener):
    """``circuit breaker provisioning: closed -> open (5 consecutive failures, last …)``."""

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        old = old_state.name if old_state is not None else "none"
        new = new_state.name
        reason = getattr(cb, "transition_reason", "") or "unspecified"
        logger.log(
            logging.WARNING if new == STATE_OPEN else logging.INFO,
            "circuit breaker %s: %s -> %s (%s)",
            cb.name,
            old,
            new,
            reason,
            extra={"breaker": cb.name, "old_state": old, "new_state": new, "reason": reason},
        )


class TransitionMetricsListener(pybreaker.CircuitBreakerListener):
    """``circuit_breaker_transitions_total{breaker, to}``."""

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        from apps.ops.metrics.definitions import CIRCUIT_BREAKER_TRANSITIONS

        CIRCUIT_BREAKER_TRANSITIONS.labels(breaker=cb.name, to=new_state.name).inc()


def default_listeners() -> tuple[pybreaker.CircuitBreakerListener, ...]:
    return (TransitionLogListener(), TransitionMetricsListener())
