"""The cache backends named in ``CACHES``: every call counted in ``cache_operations_total``, Redis
bypassed while unreachable (docs/ARCHITECTURE.md, "The cache during a Redis outage").

While a process's :class:`Outage` lasts, calls are answered at once as an empty cache (writes and
deletions are lost). ``incr``/``decr`` (a missing key raises) and operations beyond Django's cache
API (locks, key scans) are not bypassed: a feature that needs Redis fails alone, with Redis' error.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from functools import partialmethod
from typing import Any
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.locmem import LocMemCache as DjangoLocMemCache
from django_prometheus.cache.backends.redis import RedisCache as PrometheusRedisCache
from django_redis.exceptions import ConnectionInterrupted
from redis.backoff import NoBackoff
from redis.retry import Retry

from .metrics.definitions import CACHE_OPERATIONS

logger = logging.getLogger("apps.ops.cache")

# What says "Redis cannot be reached" rather than "Redis refused this command".
_UNREACHABLE_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


class Outage:
    """Whether one Redis server answers this process; while it does not, a thread pings it."""

    def __init__(self, address: str, ping: Callable[[], Any]) -> None:
        self.address = address  # host:port, for logs: never the password
        self._ping = ping
        self._lock = threading.Lock()
        self._since: float | None = None
        self._closed = threading.Event()

    @property
    def unreachable(self) -> bool:
        return self._since is not None

    @property
    def seconds(self) -> float:
        """How long Redis has been unreachable (0 when it answers)."""
        since = self._since
        return 0.0 if since is None else time.monotonic() - since

    def report(self, error: BaseException) -> None:
        """Redis did not answer: bypass it from now on and start pinging it in the background."""
        with self._lock:
            if self._since is not None:
                return
            self._since = time.monotonic()
        logger.warning(
            "cache: Redis at %s unreachable (%s: %s); pages run without the cache until it answers",
            self.address,
            type(error).__name__,
            error,
            extra={"redis": self.address},
        )
        threading.Thread(target=self._watch, name="cache-redis-watch", daemon=True).start()

    def close(self) -> None:
        """Stop watching (the record is being forgotten)."""
        self._closed.set()

    def _watch(self) -> None:
        while not self._closed.wait(float(settings.CACHE_RETRY_SECONDS)):
            try:
                self._ping()
            except (redis.RedisError, OSError):
                continue
            with self._lock:
                down_for, self._since = time.monotonic() - (self._since or time.monotonic()), None
            logger.info(
                "cache: Redis at %s answers again after %.1f s; the cache is in use",
                self.address,
                down_for,
                extra={"redis": self.address},
            )
            return


# The cache's connection pool -> (pid, private PING client), weakly: a discarded pool takes its
# client. (pid, location) -> Outage. By pid: a forked child must never reuse its parent's sockets,
# nor inherit an outage whose watcher thread did not fork with it.
_ping_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_outages: dict[tuple[int, str], Outage] = {}
_registry_lock = threading.Lock()


def ping_client(cache_client: redis.Redis) -> redis.Redis:
    """A client on the cache's server and timeouts without redis-py's retries, kept per process: a
    probe or a watcher needs one honest attempt, and the cache's own pool stays free for pages.
    Sentinel and cluster pools are used as they are."""
    pool = cache_client.connection_pool
    if type(pool) not in (redis.ConnectionPool, redis.BlockingConnectionPool):
        return cache_client
    with _registry_lock:
        pid, client = _ping_clients.get(pool, (None, None))
        if client is None or pid != os.getpid():
            kwargs = {**pool.connection_kwargs, "retry": Retry(NoBackoff(), 0)}
            private_pool = redis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
            client = redis.Redis(connection_pool=private_pool)
            _ping_clients[pool] = (os.getpid(), client)
    return client


def disconnect_ping_clients() -> None:
    """Close this process's private PING clients (a shutdown cleanup task)."""
    with _registry_lock:
        clients = [client for pid, client in _ping_clients.values() if pid == os.getpid()]
    for client in clients:
        client.connection_pool.disconnect()


def reset() -> None:
    """Forget every outage record of this process and stop their watchers (tests)."""
    with _registry_lock:
        outages = [_outages.pop(key) for key in list(_outages) if key[0] == os.getpid()]
    for outage in outages:
        outage.close()


def outage_of(cache: BaseCache) -> Outage | None:
    return cache.outage if isinstance(cache, RedisCache) else None


_MISSING = object()
_NOT_BYPASSED = object()  # the "empty cache answer" of a call that is never bypassed


class CountedCache:
    """Counts each call of Django's cache API by operation and result; put it before the backend."""

    outage: Outage | None = None  # Redis backends only: calls are bypassed while it lasts

    def counted_call(self, operation: str, empty_answer: Any, *args: Any, **kwargs: Any) -> Any:
        """``operation`` of the backend, counted; ``empty_answer`` is what an empty cache answers."""
        outage = None if empty_answer is _NOT_BYPASSED else self.outage
        if outage is not None and outage.unreachable:
            CACHE_OPERATIONS.labels(operation, "bypassed").inc()
            return empty_answer
        try:
            result = getattr(super(), operation)(*args, **kwargs)
        except Exception as exc:
            CACHE_OPERATIONS.labels(operation, "error").inc()
            # django-redis wraps redis-py's error, and some of its methods raise the cause again.
            error = exc.__cause__ if isinstance(exc, ConnectionInterrupted) else exc
            if outage is None or not isinstance(error, _UNREACHABLE_ERRORS):
                raise
            outage.report(error)
            return empty_answer
        if operation == "get":
            CACHE_OPERATIONS.labels(operation, "miss" if result is _MISSING else "hit").inc()
        else:
            CACHE_OPERATIONS.labels(operation, "ok").inc()
        return result

    def get(self, key: Any, default: Any = None, version: int | None = None, **kwargs: Any) -> Any:
        value = self.counted_call("get", _MISSING, key, _MISSING, version=version, **kwargs)
        return default if value is _MISSING else value

    def get_many(self, keys: Any, *args: Any, **kwargs: Any) -> dict:
        return self.counted_call("get_many", {}, keys, *args, **kwargs)

    def set_many(self, data: dict, *args: Any, **kwargs: Any) -> Any:
        return self.counted_call("set_many", list(data), data, *args, **kwargs)

    set = partialmethod(counted_call, "set", False)
    add = partialmethod(counted_call, "add", False)
    touch = partialmethod(counted_call, "touch", False)
    delete = partialmethod(counted_call, "delete", False)
    has_key = partialmethod(counted_call, "has_key", False)
    clear = partialmethod(counted_call, "clear", False)
    delete_many = partialmethod(counted_call, "delete_many", 0)
    incr = partialmethod(counted_call, "incr", _NOT_BYPASSED)
    decr = partialmethod(counted_call, "decr", _NOT_BYPASSED)


class RedisCache(CountedCache, PrometheusRedisCache):
    """django-redis, counted (``cache_operations_total``, django-prometheus' get counters), and
    bypassed while Redis is unreachable."""

    _server: str  # django-redis: the LOCATION setting

    @property
    def outage(self) -> Outage:
        key = (os.getpid(), str(self._server))
        outage = _outages.get(key)
        if outage is None:
            parts = urlsplit(str(self._server).split(",")[0])
            address = f"{parts.hostname}:{parts.port or 6379}"
            with _registry_lock:
                outage = _outages.setdefault(
                    key, Outage(address, lambda: ping_client(self.client.get_client(write=True)).ping())
                )
        return outage


class LocMemCache(CountedCache, DjangoLocMemCache):
    """Django's local-memory cache, counted (development, one process). Not django-prometheus': it
    returns the default for cached falsy values (``0``, ``""``)."""
