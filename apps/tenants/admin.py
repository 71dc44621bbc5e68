from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User

from apps.ops.admin_guards import CheckedAutocompleteMixin, SelectionCheckedAdmin

from .models import Membership, Tenant


class MembershipInline(CheckedAutocompleteMixin, admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(SelectionCheckedAdmin):
    list_display = ["slug", "name", "active", "created_at"]
    list_filter = ["active"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(CheckedAutocompleteMixin, SelectionCheckedAdmin):
    list_display = ["user", "tenant", "created_at"]
    list_select_related = ["user", "tenant"]
    search_fields = ["user__username", "tenant__slug"]
    autocomplete_fields = ["user", "tenant"]


# Staff accounts and their groups: Django's own admin, with the same check on its actions.
for model, model_admin in ((User, UserAdmin), (Group, GroupAdmin)):
    admin.site.unregister(model)
    admin.site.register(model, type(model_admin.__name__, (SelectionCheckedAdmin, model_admin), {}))
