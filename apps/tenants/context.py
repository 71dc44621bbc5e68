"""The tenant of the current request, for code that has no request (metrics labels, logs)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Tenant

current_tenant: ContextVar[Tenant | None] = ContextVar("current_tenant", default=None)


def current_tenant_slug() -> str | None:
    tenant = current_tenant.get()
    return tenant.slug if tenant is not None else None
