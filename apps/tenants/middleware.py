"""Sets ``request.tenant`` (a known, active Tenant or None), ``request.tenant_established`` (the
logged-in user is a member of it) and the tenant ContextVar."""

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
        request.tenant_established = (
            user.is_authenticated and tenant is not None and tenant_for_user(user.pk) == tenant
        )
        token = current_tenant.set(tenant)
        try:
            return self.get_response(request)
        finally:
            current_tenant.reset(token)
