"""The breakers of this process, created on first use, and the statuses of every known breaker.

Known: configured (settings or an admin override), used in this process, or used by any process sharing
the Redis (its name is in a Redis set). Settings are read once, on first use (again after ``reset``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from django.conf import settings

from . import config
from .breaker import Breaker
from .config import BreakerConfig, Overrides
from .status import STATE_CLOSED, BreakerStatus, StoredState
from .storage import (
    NAMES_KEY,
    STATE_FIELDS,
    STATE_KEY_PREFIX,
    STATE_KEY_SUFFIX,
    RedisLink,
    ResilientStorage,
    SharedStateUnavailable,
)

logger = logging.getLogger("apps.ops.breakers")


# Reads the set of breaker names and, for each, the keys of ``storage.state_keys`` (same order).
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
    """One breaker's values of ``storage.state_keys``, as read by MGET."""
    raw_state, raw_failures, raw_successes, raw_opened = values
    state = raw_state.decode() if raw_state else STATE_CLOSED
    opened_at = datetime.fromtimestamp(int(raw_opened), tz=UTC) if raw_opened else None
    return state, int(raw_failures or 0), int(raw_successes or 0), opened_at


@dataclass(frozen=True)
class _Settings:
    """What the registry reads from settings, once."""

    link: RedisLink | None
    configured: Mapping[str, BreakerConfig]  # from CIRCUIT_BREAKERS
    refresh_seconds: float  # of the admin overrides


class BreakerRegistry:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget this process's breakers and what was read from settings (their shared state stays).
        Runs in a forked child: no lock another thread of the parent may hold, none of its sockets."""
        self._mutex = threading.Lock()
        self._breakers: dict[str, Breaker] = {}
        self._settings: _Settings | None = None
        self._configured_with: Overrides | None = None  # the overrides the live breakers follow
        self._status_script = None

    def _read_settings(self) -> _Settings:
        if self._settings is None:
            with self._mutex:
                if self._settings is None:
                    url = settings.REDIS_URL
                    self._settings = _Settings(
                        link=RedisLink(url, socket_timeout=settings.REDIS_SOCKET_TIMEOUT) if url else None,
                        configured=config.from_settings(settings.CIRCUIT_BREAKERS),
                        refresh_seconds=settings.CIRCUIT_BREAKER_CONFIG_REFRESH_SECONDS,
                    )
        return self._settings

    def _overrides(self) -> Overrides:
        return config.overrides.current(self._read_settings().refresh_seconds)

    def _config(self, name: str, overrides: Overrides) -> BreakerConfig:
        return config.resolve(name, self._read_settings().configured, overrides)

    def get(self, name: str) -> Breaker:
        """The breaker called ``name``, created on first use, with the configuration in force."""
        read = self._read_settings()  # before the mutex, which reading the settings takes
        overrides = config.overrides.current(read.refresh_seconds)
        breaker = self._breakers.get(name)
        if breaker is None:
            config.validate_name(name)
            with self._mutex:
                breaker = self._breakers.get(name)
                if breaker is None:
                    storage = ResilientStorage(name, read.link)
                    breaker = Breaker(name, config.resolve(name, read.configured, overrides), storage)
                    self._breakers[name] = breaker
        if overrides is not self._configured_with:  # staff changed them: live breakers follow
            with self._mutex:
                # The newest overrides, not this thread's: a thread that read them earlier must not
                # put older values back.
                latest = config.overrides.current(read.refresh_seconds)
                if latest is not self._configured_with:
                    for live_name, live in self._breakers.items():
                        live.config = config.resolve(live_name, read.configured, latest)
                    self._configured_with = latest
        return breaker

    def statuses(self) -> list[BreakerStatus]:
        """Every known breaker's status, sorted by name: one Redis round trip, never raises."""
        try:
            return self._statuses(self._overrides())
        except Exception:
            logger.exception("circuit breaker statuses: unexpected error, reporting local state only")
            return [
                BreakerStatus.of(name, breaker.config, breaker.storage.local_snapshot(), shared=False)
                for name, breaker in sorted(self._breakers.items())
            ]

    def _statuses(self, overrides: Overrides) -> list[BreakerStatus]:
        configured = set(self._read_settings().configured) | set(overrides)
        names = set(self._breakers) | {name for name in configured if config.is_valid_name(name)}
        link = self._read_settings().link
        if link is None:
            return self._local_statuses(names, overrides)
        try:
            raw = link.run(lambda client: self._read_shared(client, names))
        except SharedStateUnavailable:
            return self._local_statuses(names, overrides)
        statuses = []
        for name in sorted(raw):
            try:
                stored = parse_raw(raw[name])
            except (TypeError, ValueError):
                logger.error("circuit breaker %s: unreadable shared state %r", name, raw[name])
                continue
            statuses.append(BreakerStatus.of(name, self._config(name, overrides), stored, shared=True))
        return statuses

    def _read_shared(self, client: redis.Redis, names: set[str]) -> dict[str, list]:
        """Every breaker registered in Redis (plus ``names``) → its raw values, in one round trip."""
        if self._status_script is None:
            self._status_script = client.register_script(_STATUS_SCRIPT)
        reply = self._status_script(
            keys=[NAMES_KEY], args=[STATE_KEY_PREFIX, STATE_KEY_SUFFIX, *STATE_FIELDS]
        )
        raw = {name: [None] * len(STATE_FIELDS) for name in names}  # configured, never used: no keys yet
        for name, values in zip(reply[::2], reply[1::2], strict=True):
            name = name.decode()
            if config.is_valid_name(name):
                raw[name] = values
        return raw

    def _local_statuses(self, names: set[str], overrides: Overrides) -> list[BreakerStatus]:
        statuses = []
        for name in sorted(names):
            breaker = self._breakers.get(name)
            stored = breaker.storage.local_snapshot() if breaker else (STATE_CLOSED, 0, 0, None)
            statuses.append(BreakerStatus.of(name, self._config(name, overrides), stored, shared=False))
        return statuses

    def disconnect(self) -> None:
        """Close this process's Redis connections (a shutdown cleanup task); state stays in Redis."""
        read = self._settings
        if read is not None and read.link is not None:
            read.link.client.connection_pool.disconnect()


registry = BreakerRegistry()
os.register_at_fork(after_in_child=registry.reset)
