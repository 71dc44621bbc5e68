"""django-axes' cache handler, adapted: the cache looked up per call, nothing counted (and nothing
raised) while Redis is unreachable, and one log line per failed or throttled login.

Undocumented members of django-axes used here (recheck them on an upgrade):
- ``AxesCacheHandler.cache``, set once in ``__init__``: replaced by a property;
- ``request.axes_locked_out``: set by ``AxesStandaloneBackend`` when it refuses a locked-out login
  (with ``AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT`` off) and by the handler at the limit;
- ``request.axes_failures_since_start``: the count the handler has just stored;
- ``get_client_cache_keys``: one key per entry of ``AXES_LOCKOUT_PARAMETERS``, in that order.
"""

from __future__ import annotations

from typing import Any

import redis
from axes.handlers.cache import AxesCacheHandler
from axes.helpers import (
    get_cache,
    get_client_cache_keys,
    get_client_username,
    get_cool_off,
    get_credentials,
    get_failure_limit,
)
from django.conf import settings
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
            except (ConnectionInterrupted, redis.RedisError, OSError, ValueError):
                # Redis went away, or paused past the cache's timeout, or the key expired between
                # axes' add and incr: this failure is not counted, the login still gets its answer.
                request.axes_failures_since_start = None
        failures = request.axes_failures_since_start
        if failures is None:
            log_login(request, username, "failed", "not counted: Redis unreachable")
        else:
            limit = get_failure_limit(request, credentials)
            locked = f", {locked_for}" if request.axes_locked_out else ""
            log_login(request, username, "failed", f"failure {failures} of {limit}{locked}")

    def user_logged_in(self, sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
        super().user_logged_in(sender, request, user, **kwargs)  # AXES_RESET_ON_SUCCESS is off
        # A success clears the account's failures only: clearing the address's too would let one
        # client try passwords on other accounts and log into its own between tries, for ever.
        keys = get_client_cache_keys(request, get_credentials(user.get_username()))
        account_key = keys[settings.AXES_LOCKOUT_PARAMETERS.index("username")]
        try:
            self.cache.delete(account_key)
        except (ConnectionInterrupted, redis.RedisError, OSError):
            pass  # fail-open, as counting does
