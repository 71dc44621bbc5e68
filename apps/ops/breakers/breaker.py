"""One named circuit breaker: pybreaker's state machine, without its lock around the call.

pybreaker's ``CircuitBreaker.call`` holds an RLock for the whole protected call, so every call
through one breaker in a process runs one at a time. :class:`SharedCircuitBreaker` keeps pybreaker's
states (closed → open → half-open → closed, with ``fail_max``, ``reset_timeout`` and
``success_threshold``), storage and listeners, but never holds its lock around the call, nor around
the storage reads and writes that admit a call and record its outcome: each of those is atomic in
the storage itself (Redis commands; a small lock in the local copy), so threads of one process
follow the same rules as separate processes do. The lock is taken only for a transition (rare).

Other differences from pybreaker, each deliberate:

- A transition is made with an atomic swap in the shared storage, so when several workers or pods
  attempt the same transition at once exactly one of them logs and counts it; the others (and any
  process that merely notices a change made elsewhere) adopt the new state silently.
- The call that reaches the failure threshold re-raises its own error (the upstream's), not a
  ``CircuitBreakerError``: that call did reach the upstream. Calls rejected by an open breaker
  raise :class:`CircuitOpenError` (a ``pybreaker.CircuitBreakerError``).
- Only ``Exception`` counts as a failure: ``KeyboardInterrupt``/``SystemExit`` say nothing about
  the upstream.
- Listeners are isolated: one that raises is logged and never breaks a call.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pybreaker

from .config import BreakerConfig
from .status import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN, STATES, BreakerStatus
from .storage import ResilientStorage

logger = logging.getLogger("apps.ops.breakers")

T = TypeVar("T")


class CircuitOpenError(pybreaker.CircuitBreakerError):
    """The breaker is open: the call was not attempted."""

    def __init__(self, breaker: str, retry_after: float) -> None:
        self.breaker = breaker
        self.retry_after = max(retry_after, 0.0)
        super().__init__(f"circuit breaker {breaker!r} is open; next trial in {self.retry_after:.1f} s")


def count_call(breaker: str, outcome: str) -> None:
    """``circuit_breaker_calls_total{breaker, outcome}``; metrics never break a call."""
    try:
        from apps.ops.metrics.definitions import CIRCUIT_BREAKER_CALLS

        CIRCUIT_BREAKER_CALLS.labels(breaker=breaker, outcome=outcome).inc()
    except Exception:
        logger.exception("circuit breaker %s: could not count a call", breaker)


class IsolatedListener(pybreaker.CircuitBreakerListener):
    """Wraps a listener so that an exception in it is logged and goes no further."""

    def __init__(self, listener: pybreaker.CircuitBreakerListener) -> None:
        self.listener = listener

    def _run(self, hook: str, cb: pybreaker.CircuitBreaker, *args: Any, **kwargs: Any) -> None:
        try:
            getattr(self.listener, hook)(cb, *args, **kwargs)
        except Exception:
            logger.exception(
                "circuit breaker %s: listener %s failed in %s (the call is not affected)",
                cb.name,
                type(self.listener).__name__,
                hook,
            )

    def before_call(self, cb: pybreaker.CircuitBreaker, func: Callable, *args: Any, **kwargs: Any) -> None:
        self._run("before_call", cb, func, *args, **kwargs)

    def failure(self, cb: pybreaker.CircuitBreaker, exc: BaseException) -> None:
        self._run("failure", cb, exc)

    def success(self, cb: pybreaker.CircuitBreaker) -> None:
        self._run("success", cb)

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        self._run("state_change", cb, old_state, new_state)


class SharedCircuitBreaker(pybreaker.CircuitBreaker):
    """A named breaker whose state lives in a :class:`ResilientStorage` (see the module doc)."""

    def __init__(
        self,
        name: str,
        config: BreakerConfig,
        storage: ResilientStorage,
        listeners: tuple[pybreaker.CircuitBreakerListener, ...] = (),
    ) -> None:
        super().__init__(
            fail_max=config.fail_max,
            reset_timeout=config.reset_timeout,
            success_threshold=config.success_threshold,
            state_storage=storage,
            name=name,
            throw_new_error_on_trip=False,
        )
        self.request_timeout = config.request_timeout
        self.config_generation = -1
        # Why the last transition made by this process happened (read by the logging listener).
        self.transition_reason = ""
        self._failing_call = threading.local()  # the error being recorded, for the trip reason
        for listener in listeners:
            self.add_listener(listener)

    @property
    def storage(self) -> ResilientStorage:
        return self._state_storage  # type: ignore[return-value]

    def apply_config(self, config: BreakerConfig) -> None:
        with self._lock:
            self.fail_max = config.fail_max
            self.reset_timeout = config.reset_timeout
            self.success_threshold = config.success_threshold
            self.request_timeout = config.request_timeout

    # --- listeners: always isolated --------------------------------------------------------------
    def add_listener(self, listener: pybreaker.CircuitBreakerListener) -> None:
        wrapped = listener if isinstance(listener, IsolatedListener) else IsolatedListener(listener)
        super().add_listener(wrapped)

    def remove_listener(self, listener: pybreaker.CircuitBreakerListener) -> None:
        with self._lock:
            for wrapped in list(self._listeners):
                if wrapped is listener or getattr(wrapped, "listener", None) is listener:
                    self._listeners.remove(wrapped)
                    return
        raise ValueError(f"{listener!r} is not a listener of {self.name}")

    # --- state -----------------------------------------------------------------------------------
    @property
    def state(self) -> Any:
        """The state object, following the storage when another process changed it."""
        stored = self._state_storage.state
        if stored != self._state.name:
            with self._lock:
                self._adopt(stored)
        return self._state

    @state.setter
    def state(self, state_str: str) -> None:
        self._transition(state_str, reason="set directly")

    def _adopt(self, stored: str) -> None:
        """Take over a state another process set: no listeners, no log line, no counter resets."""
        if stored not in STATES:
            logger.error(
                "circuit breaker %s: unknown stored state %r, treating it as closed", self.name, stored
            )
            stored = STATE_CLOSED
        if stored != self._state.name:
            logger.debug("circuit breaker %s: now %s (changed elsewhere)", self.name, stored)
            self._state = self._create_new_state(stored, prev_state=self._state, notify=False)

    def _transition(self, new_state: str, reason: str) -> None:
        """Move to ``new_state``; only the process whose swap changed the stored state notifies."""
        with self._lock:
            previous = self.storage.swap_state(new_state)
            if previous == new_state:
                # Another worker or pod made this very transition first (and reported it).
                self._adopt(new_state)
                return
            old = self._state
            if previous in STATES and previous != old.name:
                old = self._create_new_state(previous, prev_state=old, notify=False)
            self.transition_reason = reason
            self._state = self._create_new_state(new_state, prev_state=old, notify=True)

    def open(self, reason: str | None = None) -> bool:
        with self._lock:
            if reason is None:
                reason = self._trip_reason()
            self._state_storage.opened_at = datetime.now(UTC)
            self._transition(STATE_OPEN, reason)
        return False  # pybreaker: "throw a new error on trip" — no, the caller gets the real one

    def half_open(self, reason: str | None = None) -> None:
        with self._lock:
            self._transition(
                STATE_HALF_OPEN, reason or f"recovery timeout of {self.reset_timeout:g} s elapsed"
            )

    def close(self, reason: str | None = None) -> None:
        with self._lock:
            self._state_storage.reset_success_counter()
            self._transition(
                STATE_CLOSED, reason or f"{self.success_threshold} consecutive successful trial calls"
            )

    def reset(self, reason: str) -> BreakerStatus:
        """Close the breaker and zero its counters (everywhere, when shared); the status before."""
        with self._lock:
            before = self.status()
            self._state_storage.reset_counter()
            self._state_storage.reset_success_counter()
            if self.state.name != STATE_CLOSED:
                self._transition(STATE_CLOSED, reason)
        return before

    def _trip_reason(self) -> str:
        failure = getattr(self._failing_call, "error", None)
        last = f"{type(failure).__name__}: {failure}" if failure is not None else "unknown error"
        if self._state.name == STATE_HALF_OPEN:
            return f"trial call failed ({last})"
        return f"{self.fail_counter} consecutive failures, last {last}"

    # --- calls -------------------------------------------------------------------------------------
    def _admit(self, func: Callable | None, args: tuple, kwargs: dict) -> None:
        """Let a call through, or raise CircuitOpenError (half-opens once the timeout is over)."""
        if self.state.name == STATE_OPEN:
            opened_at = self._state_storage.opened_at
            if opened_at is not None:
                remaining = (
                    opened_at + timedelta(seconds=self.reset_timeout) - datetime.now(UTC)
                ).total_seconds()
                if remaining > 0:
                    count_call(self.name, "rejected")
                    raise CircuitOpenError(self.name, remaining)
            self.half_open()
        for listener in self._listeners:
            listener.before_call(self, func, *args, **kwargs)

    def _record_success(self) -> None:
        self.state._handle_success()
        count_call(self.name, "success")

    def _record_failure(self, exc: Exception) -> None:
        system_error = self.is_system_error(exc)
        self._failing_call.error = exc
        try:
            # pybreaker's rules: count it, notify listeners, open at the threshold; an excluded
            # error counts as a success. On a trip it re-raises ``exc``; that is expected here.
            self.state._handle_error(exc, reraise=False)
        except Exception as raised:
            if raised is not exc:
                logger.exception("circuit breaker %s: recording a failure failed", self.name)
        finally:
            self._failing_call.error = None
        count_call(self.name, "failure" if system_error else "success")

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``func(*args, **kwargs)`` if the breaker admits it; its outcome updates the breaker."""
        self._admit(func, args, kwargs)
        try:
            result = func(*args, **kwargs)
        except Exception as exc:
            self._record_failure(exc)
            raise
        self._record_success()
        return result

    @contextlib.contextmanager
    def calling(self) -> Iterator[None]:
        """``with breaker.calling(): ...`` — the block is the protected call."""
        self._admit(None, (), {})
        try:
            yield
        except Exception as exc:
            self._record_failure(exc)
            raise
        self._record_success()

    def call_async(self, func: Callable, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("tornado coroutines are not supported; use call()")

    # --- status ------------------------------------------------------------------------------------
    def status(self) -> BreakerStatus:
        """This breaker's status, read from its storage (Redis when reachable)."""
        storage = self.storage
        state = self.state.name
        failures = storage.counter
        successes = storage.success_counter
        opened_at = storage.opened_at if state != STATE_CLOSED else None
        return BreakerStatus(
            name=self.name or "",
            state=state,
            failure_count=failures,
            success_count=successes,
            fail_max=self.fail_max,
            reset_timeout=float(self.reset_timeout),
            success_threshold=self.success_threshold,
            request_timeout=float(self.request_timeout),
            opened_at=opened_at,
            shared=storage.shared,
        )
