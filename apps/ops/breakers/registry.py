"""The breakers of this process, created on first use, and the statuses of every known breaker.

A breaker is *known* when it is configured (``settings.CIRCUIT_BREAKERS`` or an admin override), has
been used in this process, or has been used by any process sharing the Redis (its name is in a
Redis set). Status reads are batched: one pipelined round trip to Redis for all breakers.
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
from .storage import NAMES_KEY, RedisLink, ResilientStorage, SharedStateUnavailable, parse_raw, state_keys

logger = logging.getLogger("apps.ops.breakers")


class BreakerRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._breakers: dict[str, SharedCircuitBreaker] = {}
        self._link: RedisLink | None = None

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

    def local_names(self) -> set[str]:
        return set(self._breakers)

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

    def known_names(self) -> set[str]:
        return {status.name for status in self.statuses()}

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

    @staticmethod
    def _read_shared(client, names: set[str]) -> dict[str, list]:
        """Names registered in Redis plus ``names`` → their raw values (one round trip, usually)."""
        ordered = sorted(names)
        pipe = client.pipeline(transaction=False)
        pipe.smembers(NAMES_KEY)
        if ordered:
            pipe.mget([key for name in ordered for key in state_keys(name)])
        replies = pipe.execute()
        values = replies[1] if ordered else []
        raw = {name: values[index * 4 : index * 4 + 4] for index, name in enumerate(ordered)}
        others = sorted(
            name
            for name in (member.decode() for member in replies[0])
            if name not in raw and config.is_valid_name(name)
        )
        if others:  # used by another process only: a second read, for those
            values = client.mget([key for name in others for key in state_keys(name)])
            raw.update({name: values[index * 4 : index * 4 + 4] for index, name in enumerate(others)})
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

    def _after_fork_in_child(self) -> None:
        # A child must not inherit a lock held by another thread of its parent, nor its sockets.
        self._lock = threading.Lock()
        self._breakers = {}
        self._link = None


registry = BreakerRegistry()
os.register_at_fork(after_in_child=registry._after_fork_in_child)
