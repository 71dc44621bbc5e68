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
    try:
        user, authenticated, member = request.identity_at_entry
    except AttributeError:
        return False, None
    # ``is``: an attribute of the lazy user object would cost an exception (LazyObject's lookup).
    if request.user is not user:  # login() or logout() during the request replaced it
        return request.user.is_authenticated, None
    return authenticated, request.tenant.slug if member else None
