"""Sets ``request.tenant`` (a known, active Tenant or None) and the tenant ContextVar."""

from __future__ import annotations

from .context import current_tenant
from .resolution import resolve_tenant


class TenantMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        tenant = resolve_tenant(request)
        request.tenant = tenant
        token = current_tenant.set(tenant)
        try:
            return self.get_response(request)
        finally:
            current_tenant.reset(token)
