"""django-axes' cache handler, adapted: the cache looked up per call, nothing counted (and nothing
raised) while Redis is unreachable, and one log line per failed or throttled login.

Undocumented members of django-axes used here (recheck them on an upgrade):
- ``AxesCacheHandler.cache``, set once in ``__init__``: replaced by a property;
- ``request.axes_locked_out``: set by ``AxesStandaloneBackend`` when it refuses a locked-out login
  (with ``AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT`` off) and by the handler at the limit;
- ``request.axes_failures_since_start``: the count the handler has just stored.
"""

from __future__ import annotations

from typing import Any

from axes.handlers.cache import AxesCacheHandler
from axes.helpers import get_cache, get_client_username, get_cool_off, get_failure_limit
from django.core.cache.backends.base import BaseCache
from django.http import HttpRequest
from django_redis.exceptions import ConnectionInterrupted

from .cache import outage_of
from .logins import log_login

WRITTEN_FOR = "django-axes==8.3.1"


class LoginAttemptsHandler(AxesCacheHandler):
    """Failed logins counted in the default cache (Redis: shared by every pod), per account and per
    client address; fail-open while Redis is unreachable (docs/ARCHITECTURE.md, "Logins")."""

    def __init__(self) -> None:
        """Nothing to hold: see ``cache``."""

    @property
    def cache(self) -> BaseCache:
        # axes keeps the cache object of the thread that built the handler; Django's are per thread
        # and replaced when CACHES changes.
        return get_cache()

    def user_login_failed(
        self, sender: Any, credentials: dict, request: HttpRequest | None = None, **kwargs: Any
    ) -> None:
        if request is None:  # axes logs that it cannot count without one
            return super().user_login_failed(sender, credentials, request, **kwargs)
        username = get_client_username(request, credentials)
        locked_for = f"locked out for {int(get_cool_off(request).total_seconds()) // 60} min"
        if request.axes_locked_out:  # refused before its password was checked; axes counts nothing
            log_login(request, username, "throttled", locked_for)
            return super().user_login_failed(sender, credentials, request, **kwargs)
        outage = outage_of(self.cache)
        if outage is None or not outage.unreachable:
            try:
                super().user_login_failed(sender, credentials, request, **kwargs)
            except ConnectionInterrupted:  # Redis went away between axes' add and incr
                pass
        failures = request.axes_failures_since_start
        if failures is None:
            log_login(request, username, "failed", "not counted: Redis unreachable")
        else:
            limit = get_failure_limit(request, credentials)
            locked = f", {locked_for}" if request.axes_locked_out else ""
            log_login(request, username, "failed", f"failure {failures} of {limit}{locked}")
