"""Breaker state in Redis (``REDIS_URL``): pybreaker's Redis storage under our key names, a client
whose errors pybreaker cannot swallow, and the link that reads every breaker in one round trip."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import redis
from pybreaker import STATE_CLOSED, CircuitRedisStorage
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from .status import StoredState
from .storage import SharedLink, SharedStateUnavailable, SharedStorage

logger = logging.getLogger("apps.ops.breakers")

KEY_PREFIX = "dotmac:breaker"
# A Redis set of every breaker name ever used with this Redis: lets any process list (and reset)
# breakers that only another worker or pod has used so far.
NAMES_KEY = f"{KEY_PREFIX}s:names"

# pybreaker's CircuitRedisStorage names a breaker's keys ``<namespace>:pybreaker:<field>``.
STATE_KEY_PREFIX = f"{KEY_PREFIX}:"
STATE_KEY_SUFFIX = f":{CircuitRedisStorage.BASE_NAMESPACE}:"
STATE_FIELDS = ("state", "fail_counter", "success_counter", "opened_at")


def state_keys(name: str) -> list[str]:
    """Redis keys of one breaker, in the order of ``STATE_FIELDS``."""
    return [f"{STATE_KEY_PREFIX}{name}{STATE_KEY_SUFFIX}{field}" for field in STATE_FIELDS]


def _unavailable(exc: RedisError) -> SharedStateUnavailable:
    unreachable = isinstance(exc, RedisConnectionError | RedisTimeoutError)
    return SharedStateUnavailable(f"{type(exc).__name__}: {exc}", unreachable=unreachable)


class _UnswallowableRedis(redis.Redis):
    """A client whose commands and transactions raise SharedStateUnavailable, never a RedisError."""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute_command(*args, **options)
        except NoScriptError:
            raise  # redis-py's Script catches it: it loads the script and runs it again
        except RedisError as exc:
            raise _unavailable(exc) from exc

    def transaction(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().transaction(*args, **kwargs)
        except RedisError as exc:
            raise _unavailable(exc) from exc


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
