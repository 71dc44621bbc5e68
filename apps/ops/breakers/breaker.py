"""One named circuit breaker: pybreaker's states, storage and listeners, without pybreaker's lock around
the protected call. docs/ARCHITECTURE.md ("No lock around the call", "Other deliberate differences from
pybreaker", "Transitions and listeners") says what it does differently and why.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any, TypeVar

import pybreaker

from apps.ops.metrics.definitions import CIRCUIT_BREAKER_CALLS

from . import pybreaker_internals
from .config import BreakerConfig
from .listeners import IsolatedListener, TransitionReport
from .status import STATE_CLOSED, STATE_CODES, STATE_HALF_OPEN, STATE_OPEN, BreakerStatus
from .storage import ResilientStorage

logger = logging.getLogger("apps.ops.breakers")

T = TypeVar("T")


class CircuitOpenError(pybreaker.CircuitBreakerError):
    """The breaker is open: the call was not attempted (``retry_after``: seconds to the next trial)."""

    def __init__(self, breaker: str, retry_after: float) -> None:
        self.breaker = breaker
        self.retry_after = max(retry_after, 0.0)
        super().__init__(f"circuit breaker {breaker!r} is open; next trial in {self.retry_after:.1f} s")


class Breaker(pybreaker.CircuitBreaker):
    """A named breaker whose state lives in a :class:`ResilientStorage`; its thresholds are those of
    ``config``, which the registry replaces when staff change them."""

    fail_max = property(attrgetter("config.fail_max"))
    reset_timeout = property(attrgetter("config.reset_timeout"))
    success_threshold = property(attrgetter("config.success_threshold"))
    request_timeout = property(attrgetter("config.request_timeout"))

    def __init__(self, name: str, config: BreakerConfig, storage: ResilientStorage) -> None:
        super().__init__(state_storage=storage, name=name, throw_new_error_on_trip=False)
        self.config = config
        self.storage = storage
        # Why the last transition made by this process happened (read by the transition report).
        self.transition_reason = ""
        self._transitions = threading.RLock()  # held only while the state changes
        self._current = pybreaker_internals.new_state(self, STATE_CLOSED)  # follows the storage
        self._failing_call = threading.local()  # the error being recorded, for the trip reason
        self.add_listener(TransitionReport())

    def add_listener(self, listener: pybreaker.CircuitBreakerListener) -> None:
        super().add_listener(
            listener if isinstance(listener, IsolatedListener) else IsolatedListener(listener)
        )

    def remove_listener(self, listener: pybreaker.CircuitBreakerListener) -> None:
        for wrapped in self.listeners:
            if wrapped is listener or getattr(wrapped, "listener", None) is listener:
                return super().remove_listener(wrapped)
        raise ValueError(f"{listener!r} is not a listener of {self.name}")

    @property
    def state(self) -> Any:
        """pybreaker's state object, following the storage when another process changed it."""
        stored = self.storage.state
        if stored != self._current.name:
            with self._transitions:
                self._adopt(stored)
        return self._current

    def _adopt(self, stored: str) -> None:
        """Take over a state another process set: no listeners, no log line, no counter resets."""
        if stored not in STATE_CODES:
            logger.error(
                "circuit breaker %s: unknown stored state %r, treating it as closed", self.name, stored
            )
            stored = STATE_CLOSED
        if stored != self._current.name:
            logger.debug("circuit breaker %s: now %s (changed elsewhere)", self.name, stored)
            self._current = pybreaker_internals.new_state(self, stored, previous=self._current)

    def _transition(self, new_state: str, reason: str) -> None:
        """Move to ``new_state``; only the process whose swap changed the stored state notifies."""
        with self._transitions:
            previous = self.storage.swap_state(new_state)
            if previous == new_state:
                # Another worker or pod made this very transition first (and reported it).
                self._adopt(new_state)
                return
            old = self._current
            if previous in STATE_CODES and previous != old.name:
                old = pybreaker_internals.new_state(self, previous, previous=old)
            self.transition_reason = reason
            self._current = pybreaker_internals.new_state(self, new_state, previous=old, notify=True)

    def open(self) -> bool:
        with self._transitions:
            self.storage.opened_at = datetime.now(UTC)
            self._transition(STATE_OPEN, self._trip_reason())
        return False  # pybreaker: "throw a new error on trip" — no, the caller gets the real one

    def half_open(self) -> None:
        self._transition(STATE_HALF_OPEN, f"recovery timeout of {self.reset_timeout:g} s elapsed")

    def close(self) -> None:
        with self._transitions:
            self.storage.reset_success_counter()
            self._transition(STATE_CLOSED, f"{self.success_threshold} consecutive successful trial calls")

    def reset(self, reason: str) -> BreakerStatus:
        """Close the breaker and zero its counters (everywhere, when shared); the status before."""
        with self._transitions:
            before = self.status()
            self.storage.reset_counter()
            self.storage.reset_success_counter()
            if self.state.name != STATE_CLOSED:
                self._transition(STATE_CLOSED, reason)
        return before

    def _trip_reason(self) -> str:
        failure = getattr(self._failing_call, "error", None)
        last = f"{type(failure).__name__}: {failure}" if failure is not None else "unknown error"
        if self._current.name == STATE_HALF_OPEN:
            return f"trial call failed ({last})"
        return f"{self.fail_counter} consecutive failures, last {last}"

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``func(*args, **kwargs)`` if the breaker admits it; its outcome updates the breaker."""
        with self._protected(func, args, kwargs):
            return func(*args, **kwargs)

    def calling(self) -> contextlib.AbstractContextManager[None]:
        """``with breaker.calling(): ...`` — the block is the protected call."""
        return self._protected(None, (), {})

    @contextlib.contextmanager
    def _protected(self, func: Callable | None, args: tuple, kwargs: dict) -> Iterator[None]:
        """Rejects the call (CircuitOpenError) while open, half-opens once the timeout is over."""
        if self.state.name == STATE_OPEN:
            opened_at = self.storage.opened_at
            if opened_at is not None:
                reopens = opened_at + timedelta(seconds=self.reset_timeout)
                remaining = (reopens - datetime.now(UTC)).total_seconds()
                if remaining > 0:
                    self._count("rejected")
                    raise CircuitOpenError(self.name, remaining)
            self.half_open()
        for listener in self.listeners:
            listener.before_call(self, func, *args, **kwargs)
        try:
            yield
        except Exception as exc:
            self._record_failure(exc)
            raise
        pybreaker_internals.record_success(self.state)
        self._count("success")

    def _record_failure(self, exc: Exception) -> None:
        system_error = self.is_system_error(exc)
        self._failing_call.error = exc
        try:
            pybreaker_internals.record_failure(self.state, exc)
        except Exception:
            logger.exception("circuit breaker %s: recording a failure failed", self.name)
        finally:
            self._failing_call.error = None
        self._count("failure" if system_error else "success")

    def _count(self, outcome: str) -> None:
        """``circuit_breaker_calls_total{breaker, outcome}``; metrics never break a call."""
        try:
            CIRCUIT_BREAKER_CALLS.labels(breaker=self.name, outcome=outcome).inc()
        except Exception:
            logger.exception("circuit breaker %s: could not count a call", self.name)

    def status(self) -> BreakerStatus:
        """This breaker's status, read from its storage (the shared store when reachable)."""
        state, storage = self.state.name, self.storage
        opened_at = storage.opened_at if state != STATE_CLOSED else None
        stored = (state, storage.counter, storage.success_counter, opened_at)
        return BreakerStatus.of(self.name, self.config, stored, shared=storage.shared)
