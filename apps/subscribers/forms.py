"""Subscriber form: the plan choices come only from the request's tenant (no form tampering)."""

from __future__ import annotations

from django import forms
from django.db import IntegrityError, transaction

from apps.tenants.models import Tenant

from .models import ServicePlan, Subscriber

DUPLICATE_EMAIL = "A subscriber with this email already exists."


class SubscriberForm(forms.ModelForm):
    class Meta:
        model = Subscriber
        fields = ["name", "email", "plan"]

    def __init__(self, *args, tenant: Tenant, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        self.fields["plan"].queryset = ServicePlan.objects.filter(tenant=tenant)

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        duplicates = Subscriber.objects.filter(tenant=self.tenant, email=email)
        if self.instance.pk:
            duplicates = duplicates.exclude(pk=self.instance.pk)
        if duplicates.exists():
            raise forms.ValidationError(DUPLICATE_EMAIL)
        return email

    def save(self, commit: bool = True) -> Subscriber:
        self.instance.tenant = self.tenant
        return super().save(commit=commit)

    def save_unless_duplicate(self) -> Subscriber | None:
        """Save; None, with the duplicate error on the form, when a request racing this one (a
        double-click) saved the same email since :meth:`clean_email` looked."""
        try:
            with transaction.atomic():
                return self.save()
        except IntegrityError:
            taken = Subscriber.objects.filter(tenant=self.tenant, email=self.cleaned_data["email"])
            if not taken.exclude(pk=self.instance.pk).exists():
                raise  # another constraint: not ours to explain
            self.add_error("email", DUPLICATE_EMAIL)
            return None
