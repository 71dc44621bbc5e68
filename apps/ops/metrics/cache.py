"""Counting every cache operation in ``cache_operations_total{operation, result}``.

:class:`CacheOperationsMixin` goes before a cache backend class (the backends named in ``CACHES``
live in ``apps.ops.cache``): results are ``hit``/``miss`` for ``get``, ``ok`` for any other
operation that returned, and ``error`` when the backend raised (the exception is re-raised
unchanged). ``apps.ops.cache`` adds ``bypassed`` for calls answered without Redis during an outage.

The Redis backend extends django-prometheus' django-redis backend, which also keeps its
``django_cache_get_*`` counters. Local memory (development only) extends Django's own backend:
django-prometheus' ``LocMemCache`` returns the default for cached falsy values (``0``, ``""``),
which would change what the application reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .definitions import CACHE_OPERATIONS

COUNTED_OPERATIONS = (
    "set", "add", "delete", "touch", "incr", "decr", "has_key",
    "get_many", "set_many", "delete_many", "clear",
)  # fmt: skip
_MISSING = object()


def _counted(operation: str) -> Callable[..., Any]:
    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            result = getattr(super(CacheOperationsMixin, self), operation)(*args, **kwargs)
        except Exception:
            CACHE_OPERATIONS.labels(operation, "error").inc()
            raise
        CACHE_OPERATIONS.labels(operation, "ok").inc()
        return result

    counted.__name__ = counted.__qualname__ = operation
    return counted


class CacheOperationsMixin:
    """Counts each cache call by operation and result; put it before the real backend class."""

    def get(self, key: Any, default: Any = None, version: int | None = None, **kwargs: Any) -> Any:
        try:
            value = super().get(key, _MISSING, version=version, **kwargs)
        except Exception:
            CACHE_OPERATIONS.labels("get", "error").inc()
            raise
        if value is _MISSING:
            CACHE_OPERATIONS.labels("get", "miss").inc()
            return default
        CACHE_OPERATIONS.labels("get", "hit").inc()
        return value


for _operation in COUNTED_OPERATIONS:
    setattr(CacheOperationsMixin, _operation, _counted(_operation))
