"""Sets ``request.tenant`` (a known, active Tenant or None), ``request.identity_at_entry`` (the user,
whether logged in, whether a member of that tenant) and the tenant ContextVar."""

from __future__ import annotations

from .context import current_tenant
from .resolution import resolve_tenant, tenant_for_user


class TenantMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        tenant = resolve_tenant(request)
        request.tenant = tenant
        # The user is loaded here, once, so that what follows the response (the request metrics)
        # never needs the session store: it may be what just failed.
        user = request.user
        authenticated = user.is_authenticated
        member = authenticated and tenant is not None and tenant_for_user(user.pk) == tenant
        request.identity_at_entry = (user, authenticated, member)
        token = current_tenant.set(tenant)
        try:
            return self.get_response(request)
        finally:
            current_tenant.reset(token)
