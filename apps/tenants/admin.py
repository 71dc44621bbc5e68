from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError

from .models import Membership, Tenant


class SelectionCheckedAdmin(admin.ModelAdmin):
    """Answers an action on a selection that names no row (a forged or garbled form, ``abc`` for an
    integer key) as Django answers an empty one, with a message: Django itself filters by the values
    as given, and PostgreSQL's type check makes that a 500."""

    def response_action(self, request, queryset):
        try:
            for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
                self.model._meta.pk.to_python(value)
        except ValidationError:
            self.message_user(request, "The selection names no item of this list.", messages.WARNING)
            return None  # the list again, with the message
        return super().response_action(request, queryset)


class MembershipInline(admin.TabularInline):
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
class MembershipAdmin(SelectionCheckedAdmin):
    list_display = ["user", "tenant", "created_at"]
    list_select_related = ["user", "tenant"]
    search_fields = ["user__username", "tenant__slug"]
    autocomplete_fields = ["user", "tenant"]


# Staff accounts and their groups: Django's own admin, with the same check on its actions.
for model, model_admin in ((User, UserAdmin), (Group, GroupAdmin)):
    admin.site.unregister(model)
    admin.site.register(model, type(model_admin.__name__, (SelectionCheckedAdmin, model_admin), {}))
