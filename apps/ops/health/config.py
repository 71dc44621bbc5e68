"""Which checks run, built from ``settings.HEALTH_CHECKS`` (its options: dotmac/settings/base.py) at
call time."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .base import HealthCheck

_RESERVED_OPTIONS = ("class", "critical", "timeout", "enabled")


@lru_cache(maxsize=64)
def _check_class(path: str) -> type[HealthCheck]:
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"HEALTH_CHECKS: cannot import {path!r}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, HealthCheck)):
        raise ImproperlyConfigured(f"HEALTH_CHECKS: {path!r} is not a HealthCheck subclass")
    return cls


def configured_checks(names: Iterable[str] | None = None) -> list[HealthCheck]:
    """The check instances for ``names`` (every configured check when None), in report order."""
    config: dict[str, dict] = settings.HEALTH_CHECKS
    checks: list[HealthCheck] = []
    for name in config if names is None else names:
        if name not in config:
            raise ImproperlyConfigured(f"health check {name!r} is not in HEALTH_CHECKS")
        options = config[name]
        if not options.get("enabled", True):
            continue
        if "class" not in options:
            raise ImproperlyConfigured(f"HEALTH_CHECKS[{name!r}] needs a 'class'")
        own_options = {key: value for key, value in options.items() if key not in _RESERVED_OPTIONS}
        try:
            instances = _check_class(options["class"]).build(**own_options)
        except TypeError as exc:
            raise ImproperlyConfigured(f"HEALTH_CHECKS[{name!r}]: {exc}") from exc
        for check in instances:
            check.name = name
            if options.get("critical") is not None:
                check.critical = bool(options["critical"])
            if options.get("timeout") is not None:
                check.timeout = float(options["timeout"])
        checks.extend(instances)
    return checks


def readiness_checks() -> list[HealthCheck]:
    """What ``/ready`` runs: ``settings.HEALTH_READY_CHECKS``."""
    return configured_checks(settings.HEALTH_READY_CHECKS)
