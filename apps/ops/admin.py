"""Django admin for operations: the live "Circuit breakers" page (the changelist of the table-less
``CircuitBreaker`` model, built from the live statuses), their configuration, the reset audit.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from apps.ops import breakers, selectors, services
from apps.ops.admin_guards import SelectionCheckedAdmin
from apps.ops.breakers.config import CONFIG_FIELDS
from apps.ops.models import BreakerConfigOverride, BreakerResetAudit, CircuitBreaker, may_reset_breakers


class _ReadOnlyAdmin(admin.ModelAdmin):
    """Seen by those who may reset breakers (and by those the model's own permissions allow)."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return super().has_module_permission(request) or may_reset_breakers(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_view_permission(request, obj) or may_reset_breakers(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(CircuitBreaker)
class CircuitBreakerAdmin(_ReadOnlyAdmin):
    """Live breakers: state, failure count, configuration; "Reset selected" and "Reset all"."""

    def get_urls(self) -> list:
        name = f"{self.opts.app_label}_{self.opts.model_name}_changelist"
        return [path("", self.admin_site.admin_view(self.changelist_view), name=name)]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        if not may_reset_breakers(request.user):
            raise PermissionDenied
        if request.method == "POST":
            return self._reset(request)
        overrides = {override.name: override.pk for override in BreakerConfigOverride.objects.all()}
        rows = [
            {"status": status, "override_id": overrides.get(status.name)}
            for status in breakers.all_statuses()
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": "Circuit breakers",
            "opts": self.opts,
            "rows": rows,
            "shared": all(row["status"].shared for row in rows) if rows else None,
            "audit": selectors.breaker_reset_audit(limit=20),
            "status_url": reverse("ops:breaker-status"),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/ops/circuitbreaker/change_list.html", context)

    def _reset(self, request: HttpRequest) -> HttpResponse:
        via = BreakerResetAudit.Via.ADMIN
        if "reset_all" in request.POST:
            statuses = services.breaker_reset_all(actor=request.user, via=via)
            self.message_user(request, f"Reset all {len(statuses)} circuit breakers.", messages.SUCCESS)
        else:
            names = request.POST.getlist("names")
            if not names:
                self.message_user(request, "Select at least one circuit breaker to reset.", messages.WARNING)
            reset, unknown = [], []
            for name in names:
                try:
                    reset.append(services.breaker_reset(name=name, actor=request.user, via=via).name)
                except services.UnknownBreaker:
                    unknown.append(name)
            if reset:
                self.message_user(request, f"Reset: {', '.join(reset)}.", messages.SUCCESS)
            if unknown:
                self.message_user(request, f"Unknown circuit breakers: {', '.join(unknown)}.", messages.ERROR)
        return HttpResponseRedirect(request.path)


@admin.register(BreakerConfigOverride)
class BreakerConfigOverrideAdmin(SelectionCheckedAdmin):
    """Per-breaker settings; applied by every process within CIRCUIT_BREAKER_CONFIG_REFRESH_SECONDS."""

    list_display = fields = ("name", *CONFIG_FIELDS, "updated_at", "updated_by")
    readonly_fields = ("updated_at", "updated_by")
    search_fields = ("name",)

    def save_model(self, request: HttpRequest, obj: BreakerConfigOverride, form: Any, change: bool) -> None:
        obj.updated_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(BreakerResetAudit)
class BreakerResetAuditAdmin(_ReadOnlyAdmin):
    """Who reset which breaker, when, and from what state."""

    list_display = ("at", "breaker", "actor", "via", "state_before", "failure_count_before", "shared")
    list_filter = ("via", "state_before")
    search_fields = ("breaker", "actor")
    date_hierarchy = "at"
