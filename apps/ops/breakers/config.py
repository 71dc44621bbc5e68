"""Configuration of each named breaker: defaults, then ``settings.CIRCUIT_BREAKERS``, then the admin
overrides, kept in process memory (:class:`OverrideCache`; docs/ARCHITECTURE.md, "Configuration").
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from django.db import connections

logger = logging.getLogger("apps.ops.breakers")

# Names end up in Redis keys, URLs and metric labels: keep them short and plain.
BREAKER_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
FIRST_READ_WAIT_SECONDS = 0.25

Overrides = Mapping[str, Mapping[str, Any]]  # breaker name → {field: value or None}


@dataclass(frozen=True)
class BreakerConfig:
    """How one breaker behaves. Defaults are the production spec's."""

    fail_max: int = 5  # consecutive failures that open the breaker
    reset_timeout: float = 60.0  # seconds open before a trial call is let through (half-open)
    success_threshold: int = 3  # consecutive successful trial calls that close it again
    request_timeout: float = 30.0  # upper bound of one protected call (connect + read), seconds


DEFAULT_CONFIG = BreakerConfig()
CONFIG_FIELDS = tuple(field.name for field in fields(BreakerConfig))
_INTEGER_FIELDS = frozenset({"fail_max", "success_threshold"})


def is_valid_name(name: object) -> bool:
    return isinstance(name, str) and bool(BREAKER_NAME_PATTERN.match(name))


def validate_name(name: object) -> str:
    """The name itself, or ValueError saying what a breaker name may contain."""
    if not is_valid_name(name):
        raise ValueError(
            f"invalid circuit breaker name {name!r}: 1-63 characters of a-z, 0-9, '_', '.', '-', "
            "starting with a letter or digit"
        )
    return name  # type: ignore[return-value]


def validate_value(field: str, value: object) -> int | float:
    """A config value converted to its type, or ValueError (numbers must be ≥ 1 / > 0)."""
    if field not in CONFIG_FIELDS:
        raise ValueError(f"unknown circuit breaker setting {field!r} (known: {', '.join(CONFIG_FIELDS)})")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{field} must be a number, got {value!r}")
    if field in _INTEGER_FIELDS:
        if int(value) != value or value < 1:
            raise ValueError(f"{field} must be a whole number ≥ 1, got {value!r}")
        return int(value)
    if not value > 0:
        raise ValueError(f"{field} must be > 0 seconds, got {value!r}")
    return float(value)


def settings_errors(configured: object) -> list[str]:
    """Every problem in the value of ``CIRCUIT_BREAKERS`` (reported by the system check)."""
    configured = configured or {}
    if not isinstance(configured, dict):
        return ["CIRCUIT_BREAKERS must be a mapping of breaker name to settings"]
    errors = []
    for name, values in configured.items():
        if not is_valid_name(name):
            errors.append(f"CIRCUIT_BREAKERS: invalid breaker name {name!r}")
        if not isinstance(values, dict):
            errors.append(f"CIRCUIT_BREAKERS[{name!r}] must be a mapping")
            continue
        for field, value in values.items():
            try:
                validate_value(field, value)
            except ValueError as exc:
                errors.append(f"CIRCUIT_BREAKERS[{name!r}]: {exc}")
    return errors


def _apply(config: BreakerConfig, values: Mapping[str, Any], source: str, name: str) -> BreakerConfig:
    changes = {}
    for field, value in values.items():
        if value is None:
            continue
        try:
            changes[field] = validate_value(field, value)
        except ValueError as exc:
            # Reported at startup by the system check; at run time the default stays in force.
            logger.error("circuit breaker %s: ignoring %s setting: %s", name, source, exc)
    return replace(config, **changes) if changes else config


def from_settings(configured: object) -> dict[str, BreakerConfig]:
    """The configuration of each breaker named in ``CIRCUIT_BREAKERS`` (invalid values logged, not used)."""
    if not isinstance(configured, dict):
        return {}
    return {
        name: _apply(DEFAULT_CONFIG, values, "settings", name)
        for name, values in configured.items()
        if is_valid_name(name) and isinstance(values, dict)
    }


def resolve(name: str, configured: Mapping[str, BreakerConfig], overrides: Overrides) -> BreakerConfig:
    """The configuration in force for ``name``: defaults < settings < admin overrides."""
    return _apply(configured.get(name, DEFAULT_CONFIG), overrides.get(name) or {}, "admin override", name)


class OverrideCache:
    """The admin overrides of this process, re-read by a background thread once stale; only a process's
    first read is waited for (at most ``FIRST_READ_WAIT_SECONDS``). A read that finds a change replaces
    the mapping (never modified), so callers tell a change by the identity of what :meth:`current` returns.
    """

    def __init__(self) -> None:
        self.read_rows: Callable[[], dict[str, dict[str, Any]]] = dict
        self._mutex = threading.Lock()
        self._values: Overrides = {}
        self._loaded_at: float | None = None
        self._refresher: threading.Thread | None = None
        self._failing = False
        self._reads_started = 0
        self._applied_read = 0  # a slow read must not overwrite what a later read found

    def current(self, max_age: float) -> Overrides:
        """The overrides; a background re-read starts when they are older than ``max_age`` s."""
        loaded_at = self._loaded_at
        if loaded_at is None or time.monotonic() - loaded_at >= max_age:
            with self._mutex:
                if self._refresher is None or not self._refresher.is_alive():
                    self._refresher = threading.Thread(
                        target=self._refresh, name="breaker-config-refresh", daemon=True
                    )
                    self._refresher.start()
        refresher = self._refresher
        if self._loaded_at is None and refresher is not None:
            refresher.join(FIRST_READ_WAIT_SECONDS)
        return self._values

    def _refresh(self) -> None:
        try:
            self.reload()
        finally:
            connections.close_all()  # this thread's connections only

    def reload(self) -> None:
        """Read the overrides now, in the calling thread."""
        with self._mutex:
            self._reads_started += 1
            read = self._reads_started
        try:
            rows = self.read_rows()
        except Exception as exc:  # the DB is down or not migrated yet: keep the last known overrides
            if not self._failing:
                logger.warning("circuit breaker overrides could not be read, keeping the last known: %s", exc)
            self._failing = True
            self._loaded_at = time.monotonic()  # try again after the interval, not on every call
            return
        if self._failing:
            logger.info("circuit breaker overrides readable again")
        self._failing = False
        with self._mutex:
            if read <= self._applied_read:
                return  # a later read (or a reset) already answered
            self._applied_read = read
            if rows != self._values:
                self._values = rows
            self._loaded_at = time.monotonic()

    def reset(self) -> None:
        """Forget the overrides read (tests): the next use reads them again."""
        with self._mutex:
            self._values = {}
            self._loaded_at = None
            self._applied_read = self._reads_started  # reads in flight are now stale

    def after_fork_in_child(self) -> None:
        # The parent's refresh thread does not exist here, and its lock may have been held.
        self._mutex = threading.Lock()
        self._refresher = None


overrides = OverrideCache()
os.register_at_fork(after_in_child=overrides.after_fork_in_child)


def read_overrides_with(reader: Callable[[], dict[str, dict[str, Any]]]) -> None:
    """Where the admin overrides come from (set by the ops app: the models import this module)."""
    overrides.read_rows = reader


def overrides_changed(**_signal: Any) -> None:
    """Re-read the overrides now, in this thread (receives the override model's saves and deletes)."""
    overrides.reload()
