"""Resolve a request to a known, active tenant, with a per-process cache.

Sources, in order: the subdomain of ``TENANT_BASE_DOMAIN`` (when set), the ``X-Tenant-ID`` header
(when ``TENANT_HEADER_ENABLED``), then the logged-in user's membership. Only slugs of known, active
tenants resolve; anything else is "no tenant". Results, negative ones included, are cached in
process memory for ``TENANT_CACHE_SECONDS`` so the hot path costs no query and a flood of random
slugs cannot grow the cache without bound.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict

from django.conf import settings
from django.core.exceptions import DisallowedHost

from .models import SLUG_PATTERN, Membership, Tenant

_MAX_ENTRIES = 4096
_SLUG = re.compile(SLUG_PATTERN)
_MISSING = object()


class _TTLCache:
    """A small thread-safe LRU with expiry. Values may be None (a cached negative answer)."""

    def __init__(self, max_entries: int = _MAX_ENTRIES) -> None:
        self._data: OrderedDict[object, tuple[float, object]] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries

    def get(self, key: object) -> object:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return _MISSING
            expires, value = item
            if expires < time.monotonic():
                del self._data[key]
                return _MISSING
            self._data.move_to_end(key)
            return value

    def set(self, key: object, value: object, ttl: float) -> None:
        with self._lock:
            self._data[key] = (time.monotonic() + ttl, value)
            self._data.move_to_end(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_cache = _TTLCache()


def reset_cache() -> None:
    """Forget every cached resolution (called when a tenant or membership changes)."""
    _cache.clear()


def _cached(key: tuple, load) -> Tenant | None:
    value = _cache.get(key)
    if value is _MISSING:
        value = load()
        _cache.set(key, value, settings.TENANT_CACHE_SECONDS)
    return value  # type: ignore[return-value]


def tenant_by_slug(slug: str) -> Tenant | None:
    slug = slug.strip().lower()
    # Anything that could not be a slug never reaches the database (or the cache).
    if not _SLUG.match(slug):
        return None
    return _cached(("slug", slug), lambda: Tenant.objects.filter(slug=slug, active=True).first())


def tenant_for_user(user_id: int) -> Tenant | None:
    def load() -> Tenant | None:
        membership = (
            Membership.objects.select_related("tenant").filter(user_id=user_id, tenant__active=True).first()
        )
        return membership.tenant if membership else None

    return _cached(("user", user_id), load)


def subdomain_slug(host: str, base_domain: str) -> str | None:
    host = host.split(":", 1)[0].lower().rstrip(".")
    suffix = "." + base_domain
    if not host.endswith(suffix):
        return None
    label = host[: -len(suffix)]
    return label if label and "." not in label else None


def resolve_tenant(request) -> Tenant | None:
    base_domain = settings.TENANT_BASE_DOMAIN
    if base_domain:
        try:
            host = request.get_host()
        except DisallowedHost:
            host = ""
        slug = subdomain_slug(host, base_domain)
        if slug:
            return tenant_by_slug(slug)
    if settings.TENANT_HEADER_ENABLED:
        header = request.META.get(settings.TENANT_HEADER)
        if header:
            return tenant_by_slug(header)
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return tenant_for_user(user.pk)
    return None
