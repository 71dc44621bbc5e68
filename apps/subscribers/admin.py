from django.contrib import admin

from apps.ops.admin_guards import SelectionCheckedAdmin

from .models import ServicePlan, Subscriber


@admin.register(ServicePlan)
class ServicePlanAdmin(SelectionCheckedAdmin):
    list_display = ["name", "tenant", "download_mbps", "upload_mbps", "monthly_price"]
    list_filter = ["tenant"]
    list_select_related = ["tenant"]
    search_fields = ["name", "tenant__slug"]


@admin.register(Subscriber)
class SubscriberAdmin(SelectionCheckedAdmin):
    list_display = ["name", "email", "tenant", "plan", "status", "created_at"]
    list_filter = ["status", "tenant"]
    list_select_related = ["tenant", "plan"]
    search_fields = ["name", "email"]
    raw_id_fields = ["plan"]
