"""Subscriber forms: the plan choices come only from the request's tenant (no form tampering)."""

from __future__ import annotations

from django import forms
from django.db import IntegrityError, transaction

from apps.tenants.models import Tenant

from . import services
from .models import ActivityEntry, ServicePlan, Subscriber

# Bidirectional embedding, override and isolate controls (U+202A-U+202E, U+2066-U+2069): text in any
# script needs none of them, and one left open reorders the rest of every line the text appears in
# (messages, labels, the CSV), where no <bdi> can contain it.
_BIDI_CONTROLS = dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A)])
DUPLICATE_EMAIL = "A subscriber with this email already exists."
DUPLICATE_ACCOUNT = "Another subscriber already has this account number."
# Fields whose text is the staff's own words, in any script: shown as written, direction auto.
_FREE_TEXT = {"dir": "auto"}


class SubscriberForm(forms.ModelForm):
    class Meta:
        model = Subscriber
        fields = ["name", "email", "phone", "account_number", "service_address", "plan", "notes"]
        widgets = {
            "name": forms.TextInput(attrs=_FREE_TEXT),
            "phone": forms.TextInput(attrs={"type": "tel", "autocomplete": "tel"}),
            "service_address": forms.TextInput(attrs=_FREE_TEXT),
            "notes": forms.Textarea(attrs={**_FREE_TEXT, "rows": 4}),
        }

    def __init__(self, *args, tenant: Tenant, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        self.fields["plan"].queryset = ServicePlan.objects.filter(tenant=tenant)
        self._before = self._shown() if self.instance.pk else {}

    def _shown(self) -> dict[str, str]:
        """Each field as staff see it (the plan by its name), to record what an edit changed."""
        return {
            name: (self.instance.plan.name if name == "plan" else str(getattr(self.instance, name)))
            for name in self.Meta.fields
        }

    def _duplicates(self, **lookup):
        # A terminated subscriber's email may be taken again; its account number never.
        duplicates = Subscriber.objects.filter(tenant=self.tenant, **lookup)
        if "email" in lookup:
            duplicates = duplicates.exclude(status=Subscriber.Status.TERMINATED)
        return duplicates.exclude(pk=self.instance.pk) if self.instance.pk else duplicates

    def clean(self) -> dict:
        cleaned = super().clean()
        for name in ("name", "phone", "account_number", "service_address", "notes"):
            if isinstance(cleaned.get(name), str):
                cleaned[name] = cleaned[name].translate(_BIDI_CONTROLS)
        return cleaned

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        if self._duplicates(email=email).exists():
            raise forms.ValidationError(DUPLICATE_EMAIL)
        return email

    def clean_account_number(self) -> str:
        account = self.cleaned_data["account_number"].strip()
        if account and self._duplicates(account_number=account).exists():
            raise forms.ValidationError(DUPLICATE_ACCOUNT)
        return account

    def save(self, commit: bool = True) -> Subscriber:
        self.instance.tenant = self.tenant
        if self.instance.pk is None or not commit:
            return super().save(commit=commit)
        subscriber = super().save(commit=False)
        # Only what the form edits: a status changed meanwhile by someone else stays as it is.
        subscriber.save(update_fields=[*self.Meta.fields, "updated_at"])
        return subscriber

    def save_unless_duplicate(self, *, actor=None) -> Subscriber | None:
        """Save, with its history line; None, with the duplicate error on the form, when a request
        racing this one (a double-click) saved the same email or account number since the form's
        checks looked."""
        creating = self.instance.pk is None
        try:
            with transaction.atomic():
                subscriber = self.save()
                if creating:
                    services.record(subscriber, ActivityEntry.Action.CREATED, actor=actor)
                elif changes := {
                    name: [old, new]
                    for name, old in self._before.items()
                    if (new := self._shown()[name]) != old
                }:
                    services.record(subscriber, ActivityEntry.Action.EDITED, actor=actor, changes=changes)
                return subscriber
        except IntegrityError:
            if creating:
                self.instance.pk = None  # the save set no row; the form may be shown again
            taken = False
            if self._duplicates(email=self.cleaned_data["email"]).exists():
                self.add_error("email", DUPLICATE_EMAIL)
                taken = True
            account = self.cleaned_data.get("account_number")
            if account and self._duplicates(account_number=account).exists():
                self.add_error("account_number", DUPLICATE_ACCOUNT)
                taken = True
            if not taken:
                raise  # another constraint: not ours to explain
            return None


class ReasonForm(forms.Form):
    """A suspension's or termination's reason, and the staff's confirmation."""

    reason = forms.CharField(
        max_length=1000,
        widget=forms.Textarea(attrs={**_FREE_TEXT, "rows": 3}),
        help_text="Recorded in the subscriber's history.",
    )
    confirm = forms.BooleanField(label="I confirm")

    def __init__(self, *args, confirm_label: str = "I confirm", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["confirm"].label = confirm_label

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Say why: the reason is kept in the history.")
        return reason
