"""The breakers of this process, created on first use, and the statuses of every known breaker.

Known: configured (settings or an admin override), used in this process, or used by any process sharing
the store (its name is in Redis's set of names, or it has a row in the database). Settings are read
once, on first use (again after ``reset``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings

from . import config
from .breaker import Breaker
from .config import BreakerConfig, Overrides
from .database import DatabaseLink
from .redis_store import RedisLink
from .status import NEVER_USED, BreakerStatus
from .storage import ResilientStorage, SharedLink, SharedStateUnavailable

logger = logging.getLogger("apps.ops.breakers")


@dataclass(frozen=True)
class _Settings:
    """What the registry reads from settings, once."""

    link: SharedLink  # Redis with REDIS_URL, else the database
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

    def _read_settings(self) -> _Settings:
        if self._settings is None:
            with self._mutex:
                if self._settings is None:
                    url = settings.REDIS_URL
                    self._settings = _Settings(
                        link=RedisLink(url, socket_timeout=settings.REDIS_SOCKET_TIMEOUT)
                        if url
                        else DatabaseLink(),
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
        """Every known breaker's status, sorted by name: one round trip to the store, never raises."""
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
        try:
            stored = link.run(link.read_all)
        except SharedStateUnavailable:
            return self._local_statuses(names, overrides)
        # Configured but never used: nothing stored yet.
        stored = {name: NEVER_USED for name in names} | {
            name: state for name, state in stored.items() if config.is_valid_name(name)
        }
        return [
            BreakerStatus.of(name, self._config(name, overrides), stored[name], shared=True)
            for name in sorted(stored)
        ]

    def _local_statuses(self, names: set[str], overrides: Overrides) -> list[BreakerStatus]:
        statuses = []
        for name in sorted(names):
            breaker = self._breakers.get(name)
            stored = breaker.storage.local_snapshot() if breaker else NEVER_USED
            statuses.append(BreakerStatus.of(name, self._config(name, overrides), stored, shared=False))
        return statuses

    def disconnect(self) -> None:
        """Close this process's connections to the shared store (a shutdown cleanup task)."""
        if self._settings is not None:
            self._settings.link.disconnect()


registry = BreakerRegistry()
os.register_at_fork(after_in_child=registry.reset)
