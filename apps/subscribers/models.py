"""The ISP's business: service plans and the subscribers on them, always owned by one tenant."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from apps.tenants.models import Tenant


class ServicePlan(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="plans")
    name = models.CharField(max_length=100)
    download_mbps = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    upload_mbps = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    monthly_price = models.DecimalField(max_digits=8, decimal_places=2, validators=[MinValueValidator(0)])

    class Meta:
        ordering = ["tenant", "name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="unique_plan_name_per_tenant")]

    def __str__(self) -> str:
        return f"{self.name} ({self.download_mbps}/{self.upload_mbps} Mbps)"

    def clean(self) -> None:
        # The admin can change a plan's tenant; its subscribers would be left on another tenant's plan.
        if self.pk and self.tenant_id and self.subscribers.exclude(tenant_id=self.tenant_id).exists():
            raise ValidationError(
                {"tenant": "Subscribers of another tenant are on this plan: it cannot move to this tenant."}
            )


class Subscriber(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="subscribers")
    name = models.CharField(max_length=200)
    email = models.EmailField()
    plan = models.ForeignKey(ServicePlan, on_delete=models.PROTECT, related_name="subscribers")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "status"])]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "email"], name="unique_subscriber_email_per_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"

    def clean(self) -> None:
        # The admin can pick any plan; a plan of another tenant is never valid.
        if self.plan_id and self.tenant_id and self.plan.tenant_id != self.tenant_id:
            raise ValidationError({"plan": "This plan belongs to another tenant."})
