"""The current request's id and tenant. The tenant comes through the dotted paths
``settings.OPS_CURRENT_TENANT_FUNCTION`` and ``settings.OPS_REQUEST_IDENTITY_FUNCTION``, so ops never
imports a business app.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

_imported = cache(import_string)


def current_tenant_slug() -> str | None:
    """The slug of the resolved tenant of the current request/task, or None (also with no function set)."""
    path = settings.OPS_CURRENT_TENANT_FUNCTION
    return _imported(path)() if path else None


def _no_identity(request: object) -> tuple[bool, str | None]:
    return False, None


def request_identity_function() -> Callable[[object], tuple[bool, str | None]]:
    """The function that tells, for a request, (whether a user is logged in, the slug of the tenant
    the request speaks for: its user is a member), from what the request already established."""
    path = settings.OPS_REQUEST_IDENTITY_FUNCTION
    return _imported(path) if path else _no_identity
