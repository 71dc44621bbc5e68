"""Where breaker state lives: a shared store with a local fallback. The store is Redis (every worker
and pod) when ``REDIS_URL`` is set (``redis_store.py``), else the database (``database.py``);
docs/ARCHITECTURE.md, "Shared state".

A store raises :class:`SharedStateUnavailable` when it cannot be used (pybreaker's own Redis storage
would swallow the error and report "closed, no failures"), and :class:`ResilientStorage` carries on
with a local copy (docs/ARCHITECTURE.md, "Redis (or the database) unreachable").
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from operator import methodcaller
from typing import Any, TypeVar

from pybreaker import STATE_CLOSED, CircuitBreakerStorage

from .status import StoredState

logger = logging.getLogger("apps.ops.breakers")

T = TypeVar("T")

BACKOFF_INITIAL_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 5.0


class SharedStateUnavailable(Exception):
    """The shared store cannot be used for this operation: down, slow, backing off, or (``unreachable``
    False) it answered with an error, bad data say, and the link stays up."""

    def __init__(self, message: str, *, unreachable: bool = True) -> None:
        super().__init__(message)
        self.unreachable = unreachable


class SharedLink:
    """Where the breakers of every process share their state, with a health flag and a reconnect
    backoff; one per process. Subclasses say how to run an operation and store a breaker's state."""

    def __init__(self, address: str) -> None:
        self.address = address  # for logs: never a password
        # Names stored since the store last came back (it may have come back empty).
        self.registered: set[str] = set()
        self.healthy = True
        self._mutex = threading.Lock()
        self._retry_at = 0.0
        self._backoff = BACKOFF_INITIAL_SECONDS

    def _may_try(self) -> bool:
        if self.healthy:
            return True
        with self._mutex:
            now = time.monotonic()
            if now < self._retry_at:
                return False
            # This caller probes; every other caller stays local until the next interval.
            self._retry_at = now + self._backoff
            return True

    def run(self, operation: Callable[[], T]) -> T:
        """``operation()``, or SharedStateUnavailable (the store down, slow or backing off)."""
        if not self._may_try():
            raise SharedStateUnavailable(f"{self.address} unavailable, retrying later")
        try:
            result = self.execute(operation)
        except SharedStateUnavailable as failure:
            if failure.unreachable:
                self._mark_down(failure)
            else:  # the store answered (with an error about this operation): it is reachable
                self._mark_up()
            raise
        self._mark_up()
        return result

    def execute(self, operation: Callable[[], T]) -> T:
        return operation()

    def open_storage(self, name: str) -> SharedStorage:
        """Breaker ``name``'s state in the store, its name registered there (the store must answer)."""
        raise NotImplementedError

    def read_all(self) -> dict[str, StoredState]:
        """Every breaker registered in the store → its state."""
        raise NotImplementedError

    def disconnect(self) -> None:
        """Release this process's connections to the store (a shutdown cleanup task)."""

    def _mark_down(self, failure: SharedStateUnavailable) -> None:
        with self._mutex:
            self._retry_at = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, BACKOFF_MAX_SECONDS)
            if not self.healthy:
                return
            self.healthy = False
        logger.warning(
            "circuit breaker state: %s unreachable (%s); breakers run on this process's "
            "local state until it answers again",
            self.address,
            failure,
            extra={"store": self.address},
        )

    def _mark_up(self) -> None:
        if self.healthy:
            return
        with self._mutex:
            if self.healthy:
                return
            self.healthy = True
            self._backoff = BACKOFF_INITIAL_SECONDS
            self.registered.clear()
        logger.info(
            "circuit breaker state: %s reachable again; breakers use the shared state",
            self.address,
            extra={"store": self.address},
        )


class SharedStorage(CircuitBreakerStorage):
    """pybreaker's storage interface plus an atomic ``swap_state``."""

    def swap_state(self, state: str) -> str | None:
        """Set the state and return the one it replaced (None: none), atomically: of several
        processes attempting one transition at once, exactly one wins it."""
        raise NotImplementedError


class LocalStorage(CircuitBreakerStorage):
    """A breaker's state in this process's memory, in plain attributes (values read from the store are
    adopted); increments take a lock of their own, so the breaker need not hold one around them."""

    state: str = STATE_CLOSED
    counter: int = 0
    success_counter: int = 0
    opened_at: datetime | None = None

    def __init__(self) -> None:
        super().__init__("memory")
        self._mutex = threading.Lock()

    def increment_counter(self) -> None:
        with self._mutex:
            self.counter += 1

    def reset_counter(self) -> None:
        self.counter = 0

    def increment_success_counter(self) -> None:
        with self._mutex:
            self.success_counter += 1

    def reset_success_counter(self) -> None:
        self.success_counter = 0

    def swap_state(self, state: str) -> str:
        with self._mutex:
            previous, self.state = self.state, state
        return previous


def _field(name: str) -> property:
    return property(
        lambda storage: storage._read(name),
        lambda storage, value: storage._write(lambda target: setattr(target, name, value)),
    )


def _update(method: str) -> Callable[[ResilientStorage], None]:
    return lambda storage: storage._write(methodcaller(method))


class ResilientStorage(CircuitBreakerStorage):
    """A breaker's state in the shared store when reachable, in process memory otherwise (module doc)."""

    def __init__(self, breaker_name: str, link: SharedLink) -> None:
        super().__init__("shared")
        self.breaker_name = breaker_name
        self.link = link
        self._local = LocalStorage()
        self._remote: SharedStorage | None = None
        self._remote_mutex = threading.Lock()

    @property
    def shared(self) -> bool:
        """True while the state comes from the shared store (and so is the same in every process)."""
        return self.link.healthy

    def _shared(self, operation: Callable[[SharedStorage], T]) -> T:
        link = self.link

        def run() -> T:
            if self._remote is None or self.breaker_name not in link.registered:
                with self._remote_mutex:
                    if self._remote is None or self.breaker_name not in link.registered:
                        self._remote = link.open_storage(self.breaker_name)
                        link.registered.add(self.breaker_name)
            return operation(self._remote)

        try:
            return link.run(run)
        except SharedStateUnavailable as failure:
            if not failure.unreachable:  # the store answered, but with an error (bad data, say)
                logger.error(
                    "circuit breaker %s: shared state refused: %s; using local", self.breaker_name, failure
                )
            raise
        except Exception as exc:  # garbage in the store, a library surprise: degrade, never break the call
            logger.exception(
                "circuit breaker %s: unexpected error on shared state, using local", self.breaker_name
            )
            raise SharedStateUnavailable(str(exc), unreachable=False) from exc

    def _read(self, field: str) -> Any:
        try:
            value = self._shared(lambda remote: getattr(remote, field))
        except SharedStateUnavailable:
            return getattr(self._local, field)
        setattr(self._local, field, value)  # the shared state wins
        return value

    def _write(self, update: Callable[[CircuitBreakerStorage], object]) -> None:
        update(self._local)
        with contextlib.suppress(SharedStateUnavailable):
            self._shared(update)

    # pybreaker's storage interface: each field read from the shared store when it can be, else the
    # local copy; each write and counter update applied to the local copy and, when it can be, shared.
    state = _field("state")
    counter = _field("counter")
    success_counter = _field("success_counter")
    opened_at = _field("opened_at")
    increment_counter = _update("increment_counter")
    reset_counter = _update("reset_counter")
    increment_success_counter = _update("increment_success_counter")
    reset_success_counter = _update("reset_success_counter")

    def swap_state(self, state: str) -> str | None:
        """Set the state and return the one it replaced (None: none); see :meth:`SharedStorage.swap_state`."""
        try:
            previous = self._shared(lambda remote: remote.swap_state(state))
        except SharedStateUnavailable:
            return self._local.swap_state(state)
        self._local.state = state
        return previous

    def local_snapshot(self) -> StoredState:
        """This process's copy (no network)."""
        local = self._local
        return local.state, local.counter, local.success_counter, local.opened_at
