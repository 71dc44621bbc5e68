"""Who the current request is for, as seen from ops code that has no request object.

The tenant is owned by the tenants app; ops reaches it through the dotted path in
``settings.OPS_CURRENT_TENANT_FUNCTION`` so that ops never imports a business app.
"""

from __future__ import annotations

from contextvars import ContextVar
from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

_tenant_function = cache(import_string)


def current_tenant_slug() -> str | None:
    """The slug of the resolved tenant of the current request/task, or None."""
    return _tenant_function(settings.OPS_CURRENT_TENANT_FUNCTION)()
