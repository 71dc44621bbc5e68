"""The platform admin's view of plans and subscribers; a subscriber's history is shown, never edited."""

from django.contrib import admin

from apps.ops.admin_guards import SelectionCheckedAdmin

from . import services
from .models import ActivityEntry, ServicePlan, Subscriber


@admin.register(ServicePlan)
class ServicePlanAdmin(SelectionCheckedAdmin):
    list_display = ["name", "tenant", "download_mbps", "upload_mbps", "monthly_price", "currency"]
    list_filter = ["tenant"]
    list_select_related = ["tenant"]
    search_fields = ["name", "tenant__slug"]


class ActivityInline(admin.TabularInline):
    """The subscriber's history, as written by the lifecycle: read only."""

    model = ActivityEntry
    fields = ["at", "actor_name", "action", "changes", "reason", "outcome", "upstream_status", "error"]
    readonly_fields = fields
    ordering = ["-at", "-id"]
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Subscriber)
class SubscriberAdmin(SelectionCheckedAdmin):
    list_display = ["name", "email", "account_number", "tenant", "plan", "status", "created_at"]
    list_filter = ["status", "tenant"]
    list_select_related = ["tenant", "plan"]
    search_fields = ["name", "email", "account_number", "phone"]
    raw_id_fields = ["plan"]
    # The status changes only through the lifecycle's actions, which record why and provision.
    readonly_fields = ["status", "suspensions", "created_at", "updated_at"]
    inlines = [ActivityInline]

    def save_model(self, request, obj, form, change) -> None:
        if change:
            # Only what changed: a status changed meanwhile by the lifecycle's actions stays.
            obj.save(update_fields=[*form.changed_data, "updated_at"])
        else:
            super().save_model(request, obj, form, change)
        if not change:
            services.record(obj, ActivityEntry.Action.CREATED, actor=request.user)
        elif form.changed_data:
            changes = {
                name: [str(form.initial.get(name, "")), str(form.cleaned_data.get(name, ""))]
                for name in form.changed_data
            }
            if "plan" in changes:
                plans = dict(
                    ServicePlan.objects.filter(pk__in=[form.initial.get("plan")]).values_list("pk", "name")
                )
                changes["plan"] = [plans.get(form.initial.get("plan"), ""), obj.plan.name]
            services.record(obj, ActivityEntry.Action.EDITED, actor=request.user, changes=changes)
