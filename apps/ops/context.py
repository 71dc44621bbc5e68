"""Who the current request is for, as seen from ops code that has no request object.

The tenant is owned by the tenants app; ops reaches it through the dotted path in
``settings.OPS_CURRENT_TENANT_FUNCTION`` so that ops never imports a business app.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from functools import lru_cache

from django.conf import settings
from django.utils.module_loading import import_string

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


@lru_cache(maxsize=1)
def _tenant_function(path: str) -> Callable[[], str | None]:
    return import_string(path)


def current_tenant_slug() -> str | None:
    """The slug of the resolved tenant of the current request/task, or None."""
    path = getattr(settings, "OPS_CURRENT_TENANT_FUNCTION", "")
    if not path:
        return None
    return _tenant_function(path)()
