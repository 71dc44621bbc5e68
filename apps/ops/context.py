"""The current request's id and tenant, for ops code that has no request object. The tenant comes
through the dotted path ``settings.OPS_CURRENT_TENANT_FUNCTION``, so ops never imports a business app.
"""

from __future__ import annotations

from contextvars import ContextVar
from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

_tenant_function = cache(import_string)


def current_tenant_slug() -> str | None:
    """The slug of the resolved tenant of the current request/task, or None (also with no function set)."""
    path = settings.OPS_CURRENT_TENANT_FUNCTION
    return _tenant_function(path)() if path else None
