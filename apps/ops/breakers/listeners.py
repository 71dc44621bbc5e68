"""Listeners of every breaker: the wrapper that keeps a failing listener from breaking a call, and the
report of a transition (made only by the process that made it: once across all workers and pods)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pybreaker

from apps.ops.metrics.definitions import CIRCUIT_BREAKER_TRANSITIONS

from .status import STATE_OPEN

logger = logging.getLogger("apps.ops.breakers")


def _isolated(hook: str) -> Callable[..., None]:
    def run(self: IsolatedListener, cb: pybreaker.CircuitBreaker, *args: Any, **kwargs: Any) -> None:
        try:
            getattr(self.listener, hook)(cb, *args, **kwargs)
        except Exception:
            logger.exception(
                "circuit breaker %s: listener %s failed in %s (the call is not affected)",
                cb.name,
                type(self.listener).__name__,
                hook,
            )

    return run


class IsolatedListener(pybreaker.CircuitBreakerListener):
    """Wraps a listener so that an exception in any of its hooks is logged and goes no further."""

    def __init__(self, listener: pybreaker.CircuitBreakerListener) -> None:
        self.listener = listener

    before_call = _isolated("before_call")
    failure = _isolated("failure")
    success = _isolated("success")
    state_change = _isolated("state_change")


class TransitionReport(pybreaker.CircuitBreakerListener):
    """``circuit breaker provisioning: closed -> open (5 consecutive failures, last …)`` and
    ``circuit_breaker_transitions_total{breaker, to}``."""

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        old = old_state.name
        new = new_state.name
        reason = cb.transition_reason or "unspecified"
        logger.log(
            logging.WARNING if new == STATE_OPEN else logging.INFO,
            "circuit breaker %s: %s -> %s (%s)",
            cb.name,
            old,
            new,
            reason,
            extra={"breaker": cb.name, "old_state": old, "new_state": new, "reason": reason},
        )
        CIRCUIT_BREAKER_TRANSITIONS.labels(breaker=cb.name, to=new).inc()
