"""Admin classes that answer a forged or garbled admin form with the admin's own message, never a 500
(docs/ARCHITECTURE.md, "Hostile input"). For the admins of every app: business apps use them too."""

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import ValidationError


def _is_key(field, value) -> bool:
    """Whether ``value`` can name a row by ``field`` (an integer key's ``abc`` cannot)."""
    try:
        field.to_python(value)
    except ValidationError:
        return False
    return True


class SelectionCheckedAdmin(admin.ModelAdmin):
    """Answers an action on a selection that names no row (a forged or garbled form, ``abc`` for an
    integer key) as Django answers an empty one, with a message: Django itself filters by the values
    as given, and PostgreSQL's type check makes that a 500."""

    def response_action(self, request, queryset):
        selection = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        if not all(_is_key(self.model._meta.pk, value) for value in selection):
            self.message_user(request, "The selection names no item of this list.", messages.WARNING)
            return None  # the list again, with the message
        return super().response_action(request, queryset)


class CheckedAutocompleteSelect(AutocompleteSelect):
    """Redisplays a submitted form leaving out values that name no row: Django's widget filters by
    them as given, and PostgreSQL's type check makes that a 500 (``abc`` for an integer key)."""

    def optgroups(self, name, value, attr=None):
        target = self.field.remote_field.model._meta.get_field(self.field.remote_field.field_name)
        return super().optgroups(name, [item for item in value if _is_key(target, item)], attr)


class CheckedAutocompleteMixin:
    """Autocomplete fields with :class:`CheckedAutocompleteSelect`, for a model admin or an inline."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name in self.get_autocomplete_fields(request):
            kwargs.setdefault(
                "widget", CheckedAutocompleteSelect(db_field, self.admin_site, using=kwargs.get("using"))
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
