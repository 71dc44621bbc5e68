"""The breakers of this process, created on first use, and the statuses of every known breaker.

A breaker is *known* when it is configured (``settings.CIRCUIT_BREAKERS`` or an admin override), has
been used in this process, or has been used by any process sharing the Redis (its name is in a
Redis set). Status reads are batched: one round trip to Redis (a small Lua script) for all breakers.
"""

from __future__ import annotations

import logging
import os
import threading

from django.conf import settings

from . import config
from .breaker import SharedCircuitBreaker
from .listeners import default_listeners
from .status import STATE_CLOSED, BreakerStatus
from .storage import (
    NAMES_KEY,
    STATE_FIELDS,
    STATE_KEY_PREFIX,
    STATE_KEY_SUFFIX,
    RedisLink,
    ResilientStorage,
    SharedStateUnavailable,
    parse_raw,
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


class BreakerRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._breakers: dict[str, SharedCircuitBreaker] = {}
        self._link: RedisLink | None = None
        self._status_script = None

    # --- Redis -------------------------------------------------------------------------------------
    def link(self) -> RedisLink | None:
        """The Redis link for ``settings.REDIS_URL`` (None without one). Follows settings changes."""
        url = getattr(settings, "REDIS_URL", "") or ""
        timeout = float(getattr(settings, "REDIS_SOCKET_TIMEOUT", 0.5))
        link = self._link
        if not url:
            return None
        if link is None or link.url != url or link.socket_timeout != timeout:
            with self._lock:
                link = self._link
                if link is None or link.url != url or link.socket_timeout != timeout:
                    link = self._link = RedisLink(url, socket_timeout=timeout)
                    self._breakers.clear()  # their storage points at the previous Redis
                    self._status_script = None
        return link

    # --- breakers ----------------------------------------------------------------------------------
    def get(self, name: str) -> SharedCircuitBreaker:
        """The breaker called ``name``, created on first use, with its current configuration."""
        link = self.link()
        breaker = self._breakers.get(name)
        if breaker is None:
            config.validate_name(name)
            with self._lock:
                breaker = self._breakers.get(name)
                if breaker is None:
                    breaker = SharedCircuitBreaker(
                        name, config.resolve(name), ResilientStorage(name, link), default_listeners()
                    )
                    breaker.config_generation = config.generation()
                    self._breakers[name] = breaker
        generation = config.generation()
        if breaker.config_generation != generation:
            breaker.apply_config(config.resolve(name))
            breaker.config_generation = generation
        return breaker

    def is_known(self, name: str) -> bool:
        """Whether ``name`` is a breaker anyone has configured or used (never creates one)."""
        if not config.is_valid_name(name):
            return False
        if name in self._breakers or name in config.configured_names():
            return True
        link = self.link()
        if link is None:
            return False
        try:
            return bool(link.run(lambda client: client.sismember(NAMES_KEY, name)))
        except SharedStateUnavailable:
            return False

    # --- statuses ----------------------------------------------------------------------------------
    def statuses(self) -> list[BreakerStatus]:
        """Every known breaker's status, sorted by name: one Redis round trip, never raises."""
        try:
            return self._statuses()
        except Exception:
            logger.exception("circuit breaker statuses: unexpected error, reporting local state only")
            return self._local_statuses(set(self._breakers))

    def _statuses(self) -> list[BreakerStatus]:
        names = set(self._breakers) | config.configured_names()
        link = self.link()
        if link is None:
            return self._local_statuses(names)
        try:
            raw = link.run(lambda client: self._read_shared(client, names))
        except SharedStateUnavailable:
            return self._local_statuses(names)
        statuses = []
        for name in sorted(raw):
            try:
                state, failures, successes, opened_at = parse_raw(raw[name])
            except (TypeError, ValueError):
                logger.error("circuit breaker %s: unreadable shared state %r", name, raw[name])
                continue
            statuses.append(self._status(name, state, failures, successes, opened_at, shared=True))
        return statuses

    def _read_shared(self, client, names: set[str]) -> dict[str, list]:
        """Every breaker registered in Redis (plus ``names``) → its raw values, in one round trip.

        A server-side script reads the names set and each breaker's keys, so even a process that
        never used a breaker (the one answering a metrics scrape, say) pays a single round trip.
        """
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

    def _local_statuses(self, names: set[str]) -> list[BreakerStatus]:
        statuses = []
        for name in sorted(names):
            breaker = self._breakers.get(name)
            if breaker is not None:
                state, failures, successes, opened_at = breaker.storage.local_snapshot()
            else:
                state, failures, successes, opened_at = STATE_CLOSED, 0, 0, None
            statuses.append(self._status(name, state, failures, successes, opened_at, shared=False))
        return statuses

    @staticmethod
    def _status(name, state, failures, successes, opened_at, *, shared: bool) -> BreakerStatus:
        cfg = config.resolve(name)
        return BreakerStatus(
            name=name,
            state=state,
            failure_count=failures,
            success_count=successes,
            fail_max=cfg.fail_max,
            reset_timeout=cfg.reset_timeout,
            success_threshold=cfg.success_threshold,
            request_timeout=cfg.request_timeout,
            opened_at=opened_at if state != STATE_CLOSED else None,
            shared=shared,
        )

    def clear(self) -> None:
        """Forget every breaker and the Redis link of this process (their shared state stays)."""
        with self._lock:
            self._breakers.clear()
            self._link = None
            self._status_script = None

    def disconnect(self) -> None:
        """Close this process's Redis connections (a shutdown cleanup task); state stays in Redis."""
        link = self._link
        if link is not None:
            link.client.connection_pool.disconnect()

    def _after_fork_in_child(self) -> None:
        # A child must not inherit a lock held by another thread of its parent, nor its sockets.
        self._lock = threading.Lock()
        self._breakers = {}
        self._link = None
        self._status_script = None


registry = BreakerRegistry()
os.register_at_fork(after_in_child=registry._after_fork_in_child)
