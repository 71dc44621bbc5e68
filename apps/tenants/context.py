"""The tenant of the current request, for code that has no request (metrics labels, logs), and what a
request established about who sent it (for the request metrics' labels)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Tenant

current_tenant: ContextVar[Tenant | None] = ContextVar("current_tenant", default=None)


def current_tenant_slug() -> str | None:
    tenant = current_tenant.get()
    return tenant.slug if tenant is not None else None


def request_identity(request) -> tuple[bool, str | None]:
    """(whether the user is logged in, the slug of the tenant it is a member of and the request
    resolved to), from what ``TenantMiddleware`` established: no query, so it is safe after a
    failure. A request that never got through the middleware established nothing."""
    if not hasattr(request, "tenant_established"):
        return False, None
    # Loaded by the middleware; login() and logout() during the request replace it.
    authenticated = request.user.is_authenticated
    return authenticated, request.tenant.slug if authenticated and request.tenant_established else None
