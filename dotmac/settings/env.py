"""Typed readers for environment variables, used only by the settings modules.

Every setting that comes from the environment is read through these helpers, once, when
``dotmac.settings`` is imported; application code reads ``django.conf.settings`` instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    value = env_str(name, default).lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def env_json(name: str, default: dict) -> dict:
    """A JSON object from the environment (``{"provisioning": {"fail_max": 3}}``)."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return dict(default)
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise ImproperlyConfigured(f"{name} must be a JSON object, got {type(value).__name__}")
    return value


def database_from_url(url: str, *, pool: bool, pool_max_size: int, connect_timeout: int) -> dict:
    """Turn ``postgres://user:pass@host:port/name?opt=v`` or ``sqlite:///path`` into a DATABASES entry.

    The engines are Django's own wrapped for metrics (``apps.ops.metrics.db``); the caches below too.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        # sqlite:///relative/or/absolute -> the path after the third slash; sqlite:////abs for absolute.
        path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
        if not path:
            raise ImproperlyConfigured("DATABASE_URL sqlite:/// needs a file path")
        return {"ENGINE": "apps.ops.metrics.db.sqlite3", "NAME": path}
    if scheme in {"postgres", "postgresql", "pgsql"}:
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ImproperlyConfigured("DATABASE_URL for PostgreSQL needs a database name")
        options: dict = dict(parse_qsl(parts.query))
        options.setdefault("connect_timeout", connect_timeout)
        config = {
            "ENGINE": "apps.ops.metrics.db.postgresql",
            "NAME": name,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": unquote(parts.hostname or ""),
            "PORT": str(parts.port or ""),
            "OPTIONS": options,
            "CONN_MAX_AGE": 0,
            # A connection is checked before a request gets it (one round trip: an empty query for
            # the pool, Django's own check otherwise), so one broken by a server restart is
            # replaced instead of failing the request.
            "CONN_HEALTH_CHECKS": True,
        }
        if pool:
            # Django's native psycopg pool: one pool per process, shared by the gthread threads.
            # During a database outage a request waits at most the connect timeout for a
            # connection, then gets a 503 (apps.ops.errors). A failed reconnection gives up after
            # 1 s, so the next request tries again at once: with psycopg_pool's default backoff
            # (1, 2, 4, 8 s …) a pod would keep failing for seconds after the database is back.
            options["pool"] = {
                "min_size": 1,
                "max_size": pool_max_size,
                "timeout": connect_timeout,
                "reconnect_timeout": 1.0,
            }
        else:
            config["CONN_MAX_AGE"] = 60
        return config
    raise ImproperlyConfigured(f"DATABASE_URL scheme {scheme!r} is not supported (postgres:// or sqlite:///)")


def cache_from_url(redis_url: str, *, socket_timeout: float) -> dict:
    """Redis (django-redis, with short socket timeouts) when a URL is given, else local memory."""
    if not redis_url:
        return {"default": {"BACKEND": "apps.ops.cache.LocMemCache", "LOCATION": "dotmac"}}
    return {
        "default": {
            "BACKEND": "apps.ops.cache.RedisCache",
            "LOCATION": redis_url,
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": socket_timeout, "SOCKET_TIMEOUT": socket_timeout},
            "KEY_PREFIX": "dotmac",
        }
    }


def writable_data_dir(default: Path) -> Path:
    path = Path(env_str("DATA_DIR") or default)
    path.mkdir(parents=True, exist_ok=True)
    return path
