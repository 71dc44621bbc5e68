"""Configuration of each named breaker: defaults, then ``settings.CIRCUIT_BREAKERS``, then the DB.

The database overrides (edited by staff in the admin) are read with one query for all breakers and
kept in process memory, refreshed in the background every ``CIRCUIT_BREAKER_CONFIG_REFRESH_SECONDS``;
the process that saves an override re-reads them at once, every other worker and pod within that
time. If the database cannot be read, the last overrides read stay in force: a breaker never waits
for, nor stops working because of, its configuration store.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

logger = logging.getLogger("apps.ops.breakers")

# Names end up in Redis keys, URLs and metric labels: keep them short and plain.
BREAKER_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


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
FIRST_READ_WAIT_SECONDS = 0.25


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


def settings_errors() -> list[str]:
    """Every problem in ``settings.CIRCUIT_BREAKERS`` (used by the system check)."""
    configured = getattr(settings, "CIRCUIT_BREAKERS", {}) or {}
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


def _apply(config: BreakerConfig, values: dict[str, Any], source: str, name: str) -> BreakerConfig:
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


class _OverrideCache:
    """The DB overrides of this process, refreshed in the background every refresh interval.

    Breaker calls and status reads never wait long for the database: a stale cache starts one
    daemon thread that re-reads the table, and everyone keeps using the values already loaded. Only
    before the first read of the process completes do callers wait for it, at most
    ``FIRST_READ_WAIT_SECONDS`` (settings and defaults apply if it takes longer).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[str, Any]] = {}
        self._loaded_at: float | None = None
        self._refreshing = False
        self._thread: threading.Thread | None = None
        self._failing = False
        self._reads_started = 0
        self._applied_read = 0  # a slow read must not overwrite what a later read found
        self.generation = 0

    def get(self) -> dict[str, dict[str, Any]]:
        refresh = float(getattr(settings, "CIRCUIT_BREAKER_CONFIG_REFRESH_SECONDS", 5.0))
        loaded_at = self._loaded_at
        if (loaded_at is None or time.monotonic() - loaded_at >= refresh) and not self._refreshing:
            with self._lock:
                if not self._refreshing:
                    self._refreshing = True
                    self._thread = threading.Thread(
                        target=self._refresh, name="breaker-config-refresh", daemon=True
                    )
                    self._thread.start()
        thread = self._thread
        if self._loaded_at is None and thread is not None:
            # Nothing read yet in this process: give the first read a moment, never more.
            thread.join(FIRST_READ_WAIT_SECONDS)
        return self._values

    def _refresh(self) -> None:
        from django.db import connections

        try:
            self.reload()
        finally:
            self._refreshing = False
            connections.close_all()  # this thread's connections only

    def reload(self) -> None:
        """Read the overrides now (in the calling thread)."""
        with self._lock:
            self._reads_started += 1
            read = self._reads_started
        try:
            rows = _read_overrides() if _read_overrides is not None else {}
        except Exception as exc:  # the DB is down or not migrated yet: keep the last known overrides
            if not self._failing:
                logger.warning("circuit breaker overrides could not be read, keeping the last known: %s", exc)
            self._failing = True
            self._loaded_at = time.monotonic()  # try again after the interval, not on every call
            return
        if self._failing:
            logger.info("circuit breaker overrides readable again")
        self._failing = False
        with self._lock:
            if read <= self._applied_read:
                return  # a later read (or a reset) already answered
            self._applied_read = read
            if rows != self._values:
                self._values = rows
                self.generation += 1
            self._loaded_at = time.monotonic()

    def reset(self) -> None:
        """Forget the overrides read (tests): the next use reads them again."""
        with self._lock:
            self._values = {}
            self._loaded_at = None
            self._applied_read = self._reads_started  # reads in flight are now stale
            self.generation += 1

    def after_fork_in_child(self) -> None:
        # The parent's refresh thread does not exist here, and its lock may have been held.
        self._lock = threading.Lock()
        self._refreshing = False
        self._thread = None


# Reads the admin overrides ({name: {field: value}}); given by the ops app once models are loaded
# (apps.ops.apps), so this module never imports the models, which import it.
_read_overrides: Callable[[], dict[str, dict[str, Any]]] | None = None


def read_overrides_with(reader: Callable[[], dict[str, dict[str, Any]]]) -> None:
    """Where the admin overrides come from (the ops app's ready())."""
    global _read_overrides
    _read_overrides = reader


_overrides = _OverrideCache()
os.register_at_fork(after_in_child=_overrides.after_fork_in_child)


def resolve(name: str) -> BreakerConfig:
    """The configuration in force for ``name``: defaults < settings < admin overrides."""
    config = DEFAULT_CONFIG
    configured = getattr(settings, "CIRCUIT_BREAKERS", {}) or {}
    if isinstance(configured, dict) and isinstance(configured.get(name), dict):
        config = _apply(config, configured[name], "settings", name)
    override = _overrides.get().get(name)
    if override:
        config = _apply(config, override, "admin override", name)
    return config


def generation() -> int:
    """Changes whenever the overrides read from the DB change (cheap; may trigger a reload)."""
    _overrides.get()
    return _overrides.generation


def configured_names() -> set[str]:
    """Breakers named in settings or in the admin overrides (known even before first use)."""
    configured = getattr(settings, "CIRCUIT_BREAKERS", {}) or {}
    names = set(configured) if isinstance(configured, dict) else set()
    names.update(_overrides.get())
    return {name for name in names if is_valid_name(name)}


def reset_overrides() -> None:
    """Forget this process's cached overrides (tests); they are read again on next use."""
    _overrides.reset()


def overrides_changed(**_signal: Any) -> None:
    """Re-read the overrides now, in this thread (a receiver of the override model's saves and
    deletes in this process)."""
    _overrides.reload()


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "CIRCUIT_BREAKERS":
        _overrides.generation += 1  # live breakers re-resolve their configuration on next use


setting_changed.connect(_on_setting_changed)
