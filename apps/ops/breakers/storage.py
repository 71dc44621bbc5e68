"""Where breaker state lives: a shared store with a local fallback. The store is Redis (every worker
and pod) when ``REDIS_URL`` is set, else the database (``database.py``; docs/ARCHITECTURE.md, "Shared
state").

pybreaker's ``CircuitRedisStorage`` swallows Redis errors and then reports "closed, no failures". Our
client raises :class:`SharedStateUnavailable` instead (not a ``RedisError``: pybreaker cannot swallow
it), and :class:`ResilientStorage` carries on with a local copy (docs/ARCHITECTURE.md, "Redis (or the
database) unreachable").
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from operator import methodcaller
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis
from pybreaker import STATE_CLOSED, CircuitBreakerStorage, CircuitRedisStorage
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from .status import StoredState

logger = logging.getLogger("apps.ops.breakers")

T = TypeVar("T")

KEY_PREFIX = "dotmac:breaker"
# A Redis set of every breaker name ever used with this Redis: lets any process list (and reset)
# breakers that only another worker or pod has used so far.
NAMES_KEY = f"{KEY_PREFIX}s:names"
BACKOFF_INITIAL_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 5.0

# pybreaker's CircuitRedisStorage names a breaker's keys ``<namespace>:pybreaker:<field>``.
STATE_KEY_PREFIX = f"{KEY_PREFIX}:"
STATE_KEY_SUFFIX = f":{CircuitRedisStorage.BASE_NAMESPACE}:"
STATE_FIELDS = ("state", "fail_counter", "success_counter", "opened_at")


def state_keys(name: str) -> list[str]:
    """Redis keys of one breaker, in the order of ``STATE_FIELDS``."""
    return [f"{STATE_KEY_PREFIX}{name}{STATE_KEY_SUFFIX}{field}" for field in STATE_FIELDS]


class SharedStateUnavailable(Exception):
    """Redis cannot be used for this operation: down, slow, backing off, or (``unreachable`` False)
    it answered with an error, bad data say, and the link stays up."""

    def __init__(self, message: str, *, unreachable: bool = True) -> None:
        super().__init__(message)
        self.unreachable = unreachable

    @classmethod
    def from_redis_error(cls, exc: RedisError) -> SharedStateUnavailable:
        unreachable = isinstance(exc, RedisConnectionError | RedisTimeoutError)
        return cls(f"{type(exc).__name__}: {exc}", unreachable=unreachable)


class _UnswallowableRedis(redis.Redis):
    """A client whose commands and transactions raise SharedStateUnavailable, never a RedisError."""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute_command(*args, **options)
        except NoScriptError:
            raise  # redis-py's Script catches it: it loads the script and runs it again
        except RedisError as exc:
            raise SharedStateUnavailable.from_redis_error(exc) from exc

    def transaction(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().transaction(*args, **kwargs)
        except RedisError as exc:
            raise SharedStateUnavailable.from_redis_error(exc) from exc


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


class RedisStorage(CircuitRedisStorage, SharedStorage):
    """pybreaker's Redis storage under ``dotmac:breaker:<name>``; the swap is one ``SET … GET``."""

    def __init__(self, name: str, client: redis.Redis) -> None:
        # Its constructor initialises missing keys (SETNX), so it needs Redis up.
        super().__init__(STATE_CLOSED, client, namespace=f"{KEY_PREFIX}:{name}")
        self.client = client
        self.state_key = state_keys(name)[0]

    def swap_state(self, state: str) -> str | None:
        previous = self.client.set(self.state_key, state, get=True)
        return previous.decode() if previous is not None else None


# Reads the set of breaker names and, for each, the keys of ``state_keys`` (same order).
_STATUS_SCRIPT = """
local reply = {}
for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local keys = {}
  for index = 3, #ARGV do
    keys[#keys + 1] = ARGV[1] .. name .. ARGV[2] .. ARGV[index]
  end
  reply[#reply + 1] = name
  reply[#reply + 1] = redis.call('MGET', unpack(keys))
end
return reply
"""


def parse_raw(values: list[bytes | None]) -> StoredState:
    """One breaker's values of ``state_keys``, as read by MGET."""
    raw_state, raw_failures, raw_successes, raw_opened = values
    state = raw_state.decode() if raw_state else STATE_CLOSED
    opened_at = datetime.fromtimestamp(int(raw_opened), tz=UTC) if raw_opened else None
    return state, int(raw_failures or 0), int(raw_successes or 0), opened_at


class RedisLink(SharedLink):
    """One Redis client per process; each command waits at most ``socket_timeout``."""

    def __init__(self, url: str, *, socket_timeout: float) -> None:
        parts = urlsplit(url)
        super().__init__(f"Redis at {parts.hostname}:{parts.port or 6379}")
        self.client = _UnswallowableRedis.from_url(
            url,
            decode_responses=False,  # CircuitRedisStorage decodes bytes itself
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0),  # one attempt: the backoff decides when to try again
            client_name="dotmac-breakers",
        )
        self._status_script = self.client.register_script(_STATUS_SCRIPT)

    def open_storage(self, name: str) -> RedisStorage:
        storage = RedisStorage(name, self.client)
        self.client.sadd(NAMES_KEY, name)
        return storage

    def read_all(self) -> dict[str, StoredState]:
        """One round trip: the script reads every name of the set and its keys inside Redis."""
        reply = self._status_script(
            keys=[NAMES_KEY], args=[STATE_KEY_PREFIX, STATE_KEY_SUFFIX, *STATE_FIELDS]
        )
        stored = {}
        for raw_name, values in zip(reply[::2], reply[1::2], strict=True):
            name = raw_name.decode()
            try:
                stored[name] = parse_raw(values)
            except (TypeError, ValueError):
                logger.error("circuit breaker %s: unreadable shared state %r", name, values)
        return stored

    def disconnect(self) -> None:
        self.client.connection_pool.disconnect()


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
