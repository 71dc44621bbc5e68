"""Where breaker state lives: Redis (shared by every worker and pod) with a local fallback.

pybreaker's ``CircuitRedisStorage`` keeps ``state``, ``fail_counter``, ``success_counter`` and
``opened_at`` under a namespace per breaker. On its own it swallows Redis errors and then reports
"closed" with no failures, which would make a breaker silently closed for as long as Redis is down.
Here every Redis call goes through a :class:`RedisLink` that turns Redis errors into
:class:`SharedStateUnavailable`; :class:`ResilientStorage` catches that and carries on with a local
copy of the last state it read (a pybreaker ``CircuitMemoryStorage``), so failures are still counted
and the breaker still opens. After an error the link backs off (no network for a while, one probe
per interval), so with Redis down a call costs no Redis timeout at all. When Redis answers again,
the shared state wins: the local copy is overwritten by what Redis holds.

Each Redis operation waits at most ``REDIS_SOCKET_TIMEOUT`` (connect and read), and the client makes
no retries of its own, so a frozen Redis costs one call at most that long.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis
from pybreaker import STATE_CLOSED, CircuitBreakerStorage, CircuitMemoryStorage, CircuitRedisStorage
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

logger = logging.getLogger("apps.ops.breakers")

T = TypeVar("T")

KEY_PREFIX = "dotmac:breaker"
# A Redis set of every breaker name ever used with this Redis: lets any process list (and reset)
# breakers that only another worker or pod has used so far.
NAMES_KEY = f"{KEY_PREFIX}s:names"
BACKOFF_INITIAL_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 5.0


def namespace(name: str) -> str:
    return f"{KEY_PREFIX}:{name}"


# pybreaker's CircuitRedisStorage names a breaker's keys ``<namespace>:pybreaker:<field>``.
STATE_KEY_PREFIX = f"{KEY_PREFIX}:"
STATE_KEY_SUFFIX = f":{CircuitRedisStorage.BASE_NAMESPACE}:"
STATE_FIELDS = ("state", "fail_counter", "success_counter", "opened_at")


def state_keys(name: str) -> list[str]:
    """Redis keys of one breaker, in the order of ``STATE_FIELDS``."""
    return [f"{STATE_KEY_PREFIX}{name}{STATE_KEY_SUFFIX}{field}" for field in STATE_FIELDS]


class SharedStateUnavailable(Exception):
    """Redis could not be used for this operation (down, slow, backing off, or it refused it).

    Deliberately not a ``RedisError``: ``CircuitRedisStorage`` catches those and hides them.
    ``unreachable`` is False when Redis answered with an error (bad data, say): the link stays up.
    """

    def __init__(self, message: str, *, unreachable: bool = True) -> None:
        super().__init__(message)
        self.unreachable = unreachable


def _unavailable(exc: RedisError) -> SharedStateUnavailable:
    unreachable = isinstance(exc, RedisConnectionError | RedisTimeoutError)
    return SharedStateUnavailable(f"{type(exc).__name__}: {exc}", unreachable=unreachable)


class _GuardedClient:
    """A Redis client whose commands raise :class:`SharedStateUnavailable` instead of ``RedisError``."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def __getattr__(self, attr: str) -> Any:
        target = getattr(self._client, attr)
        if not callable(target):
            return target

        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return target(*args, **kwargs)
            except RedisError as exc:
                raise _unavailable(exc) from exc

        return guarded


class RedisLink:
    """One Redis client per process (and URL), with a health flag and a reconnect backoff."""

    def __init__(self, url: str, *, socket_timeout: float) -> None:
        self.url = url
        self.socket_timeout = socket_timeout
        parts = urlsplit(url)
        self.address = f"{parts.hostname}:{parts.port or 6379}"  # for logs: never the password
        client = redis.Redis.from_url(
            url,
            decode_responses=False,  # CircuitRedisStorage decodes bytes itself
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0),  # one attempt: the backoff below decides when to try again
            client_name="dotmac-breakers",
        )
        self.client = _GuardedClient(client)
        self._lock = threading.Lock()
        self._healthy = True
        self._retry_at = 0.0
        self._backoff = BACKOFF_INITIAL_SECONDS
        # Bumped each time Redis comes back, so storages re-register their names (Redis may be new).
        self.generation = 0

    @property
    def healthy(self) -> bool:
        return self._healthy

    def _may_try(self) -> bool:
        if self._healthy:
            return True
        with self._lock:
            now = time.monotonic()
            if now < self._retry_at:
                return False
            # This caller probes; every other caller stays local until the next interval.
            self._retry_at = now + self._backoff
            return True

    def run(self, operation: Callable[[_GuardedClient], T]) -> T:
        """``operation(client)``, or SharedStateUnavailable (Redis down, slow or backing off)."""
        if not self._may_try():
            raise SharedStateUnavailable(f"Redis at {self.address} unavailable, retrying later")
        try:
            result = operation(self.client)
        except RedisError as exc:  # from objects the guard does not wrap (pipelines, scripts)
            failure = _unavailable(exc)
            self._note(failure)
            raise failure from exc
        except SharedStateUnavailable as failure:
            self._note(failure)
            raise
        self._mark_up()
        return result

    def _note(self, failure: SharedStateUnavailable) -> None:
        if failure.unreachable:
            self._mark_down(failure)
        else:  # Redis answered (with an error about this operation): it is reachable
            self._mark_up()

    def _mark_down(self, exc: Exception) -> None:
        with self._lock:
            self._retry_at = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, BACKOFF_MAX_SECONDS)
            if not self._healthy:
                return
            self._healthy = False
        logger.warning(
            "circuit breaker state: Redis at %s unreachable (%s); breakers run on this process's "
            "local state until it answers again",
            self.address,
            exc,
            extra={"redis": self.address},
        )

    def _mark_up(self) -> None:
        if self._healthy:
            return
        with self._lock:
            if self._healthy:
                return
            self._healthy = True
            self._backoff = BACKOFF_INITIAL_SECONDS
            self.generation += 1
        logger.info(
            "circuit breaker state: Redis at %s reachable again; breakers use the shared state",
            self.address,
            extra={"redis": self.address},
        )


class _LocalState(CircuitMemoryStorage):
    """pybreaker's memory storage, thread-safe, plus adopting values read from Redis.

    Its updates take a lock of their own (memory only, never held across I/O), so the breaker does
    not have to hold one around them.
    """

    def __init__(self, state: str) -> None:
        super().__init__(state)
        self._mutex = threading.Lock()

    def increment_counter(self) -> None:
        with self._mutex:
            super().increment_counter()

    def increment_success_counter(self) -> None:
        with self._mutex:
            super().increment_success_counter()

    def adopt_counters(self, *, failures: int | None = None, successes: int | None = None) -> None:
        # CircuitMemoryStorage keeps its counters in these attributes (pybreaker 1.4, pinned).
        with self._mutex:
            if failures is not None:
                self._fail_counter = failures
            if successes is not None:
                self._success_counter = successes

    def swap_state(self, state: str) -> str:
        with self._mutex:
            previous, self.state = self.state, state
            return previous


class ResilientStorage(CircuitBreakerStorage):
    """A breaker's state in Redis when reachable, in process memory otherwise (see module doc)."""

    def __init__(self, breaker_name: str, link: RedisLink | None) -> None:
        super().__init__("redis" if link else "memory")
        self.breaker_name = breaker_name
        self._link = link
        self._local = _LocalState(STATE_CLOSED)
        self._remote: CircuitRedisStorage | None = None
        self._remote_lock = threading.Lock()
        self._registered_generation = -1

    @property
    def link(self) -> RedisLink | None:
        return self._link

    @property
    def shared(self) -> bool:
        """True while the state comes from Redis (and so is the same in every process)."""
        return self._link is not None and self._link.healthy

    def _shared(self, operation: Callable[[CircuitRedisStorage, _GuardedClient], T]) -> T:
        """Run ``operation`` against Redis; SharedStateUnavailable when it cannot."""
        if self._link is None:
            raise SharedStateUnavailable("no REDIS_URL: state is per process")

        def run(client: _GuardedClient) -> T:
            if self._remote is None:
                with self._remote_lock:
                    if self._remote is None:
                        # Its constructor initialises missing keys (SETNX), so it needs Redis up.
                        self._remote = CircuitRedisStorage(
                            STATE_CLOSED, client, namespace=namespace(self.breaker_name)
                        )  # type: ignore[arg-type]
            if self._registered_generation != self._link.generation:
                client.sadd(NAMES_KEY, self.breaker_name)
                self._registered_generation = self._link.generation
            return operation(self._remote, client)

        try:
            return self._link.run(run)
        except SharedStateUnavailable as failure:
            if not failure.unreachable:  # Redis answered, but with an error (bad data, say)
                logger.error(
                    "circuit breaker %s: shared state refused: %s; using local", self.breaker_name, failure
                )
            raise
        except Exception as exc:  # garbage in Redis, a library surprise: degrade, never break the call
            logger.exception(
                "circuit breaker %s: unexpected error on shared state, using local", self.breaker_name
            )
            raise SharedStateUnavailable(str(exc), unreachable=False) from exc

    # --- state ---------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        try:
            state = self._shared(lambda remote, _: remote.state)
        except SharedStateUnavailable:
            return self._local.state
        self._local.state = state
        return state

    @state.setter
    def state(self, state: str) -> None:
        self._local.state = state
        try:
            self._shared(lambda remote, _: setattr(remote, "state", state))
        except SharedStateUnavailable:
            pass

    def swap_state(self, state: str) -> str | None:
        """Set the state and return the one it replaces, atomically (Redis ``SET … GET``).

        Lets exactly one process win a transition that several attempt at once (only the winner
        logs and counts it). None when there was no previous state.
        """
        key = state_keys(self.breaker_name)[0]
        try:
            previous = self._shared(lambda _, client: client.set(key, state, get=True))
        except SharedStateUnavailable:
            return self._local.swap_state(state)
        self._local.state = state
        return previous.decode() if previous is not None else None

    # --- counters ------------------------------------------------------------------------------
    def increment_counter(self) -> None:
        self._local.increment_counter()
        try:
            self._shared(lambda remote, _: remote.increment_counter())
        except SharedStateUnavailable:
            pass

    def reset_counter(self) -> None:
        self._local.reset_counter()
        try:
            self._shared(lambda remote, _: remote.reset_counter())
        except SharedStateUnavailable:
            pass

    def increment_success_counter(self) -> None:
        self._local.increment_success_counter()
        try:
            self._shared(lambda remote, _: remote.increment_success_counter())
        except SharedStateUnavailable:
            pass

    def reset_success_counter(self) -> None:
        self._local.reset_success_counter()
        try:
            self._shared(lambda remote, _: remote.reset_success_counter())
        except SharedStateUnavailable:
            pass

    @property
    def counter(self) -> int:
        try:
            value = self._shared(lambda remote, _: remote.counter)
        except SharedStateUnavailable:
            return self._local.counter
        self._local.adopt_counters(failures=value)
        return value

    @property
    def success_counter(self) -> int:
        try:
            value = self._shared(lambda remote, _: remote.success_counter)
        except SharedStateUnavailable:
            return self._local.success_counter
        self._local.adopt_counters(successes=value)
        return value

    # --- opened_at -----------------------------------------------------------------------------
    @property
    def opened_at(self) -> datetime | None:
        try:
            value = self._shared(lambda remote, _: remote.opened_at)
        except SharedStateUnavailable:
            return self._local.opened_at
        if value is not None:
            self._local.opened_at = value
        return value

    @opened_at.setter
    def opened_at(self, when: datetime) -> None:
        self._local.opened_at = when
        try:
            self._shared(lambda remote, _: setattr(remote, "opened_at", when))
        except SharedStateUnavailable:
            pass

    def local_snapshot(self) -> tuple[str, int, int, datetime | None]:
        """This process's copy (no network): state, failures, successes, opened_at."""
        local = self._local
        return local.state, local.counter, local.success_counter, local.opened_at


def parse_raw(values: list[bytes | None]) -> tuple[str, int, int, datetime | None]:
    """The values of :func:`state_keys` as read by MGET → state, failures, successes, opened_at."""
    raw_state, raw_failures, raw_successes, raw_opened = values
    state = raw_state.decode() if raw_state else STATE_CLOSED
    opened_at = datetime.fromtimestamp(int(raw_opened), tz=UTC) if raw_opened else None
    return state, int(raw_failures or 0), int(raw_successes or 0), opened_at
