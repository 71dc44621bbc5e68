"""The ISP's business: service plans and the subscribers on them, always owned by one tenant."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.tenants.models import Tenant

# A plan's currency when none is given: prices are shown with it, and exported with it.
DEFAULT_CURRENCY = "USD"


class ServicePlan(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="plans")
    name = models.CharField(max_length=100)
    download_mbps = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    upload_mbps = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    monthly_price = models.DecimalField(max_digits=8, decimal_places=2, validators=[MinValueValidator(0)])
    currency = models.CharField(
        max_length=3,
        default=DEFAULT_CURRENCY,
        db_default=DEFAULT_CURRENCY,
        validators=[RegexValidator(r"^[A-Z]{3}\Z", "An ISO 4217 code: three capital letters, e.g. EUR.")],
        help_text="ISO 4217 code of the monthly price, e.g. USD, EUR, NGN.",
    )

    class Meta:
        ordering = ["tenant", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="unique_plan_name_per_tenant"),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[A-Z]{3}$"), name="plan_currency_is_iso_4217_shaped"
            ),
        ]

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
        TERMINATED = "terminated", "Terminated"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="subscribers")
    name = models.CharField(max_length=200)
    email = models.EmailField()
    # Added columns have a database default too: the previous release's code, still serving while
    # the migration runs, inserts rows without naming them (docs/DEPLOYMENT.md, expand first).
    phone = models.CharField(max_length=32, blank=True, default="", db_default="")
    account_number = models.CharField(
        max_length=32,
        blank=True,
        default="",
        db_default="",
        help_text="Your own reference for the account; unique within your ISP.",
    )
    service_address = models.CharField(max_length=300, blank=True, default="", db_default="")
    notes = models.TextField(blank=True, max_length=5000, default="", db_default="")
    plan = models.ForeignKey(ServicePlan, on_delete=models.PROTECT, related_name="subscribers")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # How many times the subscriber was suspended: names each reinstatement's provisioning request
    # (its Idempotency-Key), so that a retried reinstatement is one request and the next one is new.
    suspensions = models.PositiveIntegerField(default=0, db_default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "status"]),
            models.Index(fields=["tenant", "created_at"], name="subscriber_tenant_created"),
            models.Index(fields=["tenant", "name"], name="subscriber_tenant_name"),
        ]
        constraints = [
            # A terminated subscriber is kept for the record; a returning customer is a new subscriber.
            models.UniqueConstraint(
                fields=["tenant", "email"],
                condition=~Q(status="terminated"),
                name="unique_subscriber_email_per_tenant",
            ),
            # Account numbers are never reused, not even a terminated subscriber's.
            models.UniqueConstraint(
                fields=["tenant", "account_number"],
                condition=~Q(account_number=""),
                name="unique_account_number_per_tenant",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"

    def clean(self) -> None:
        # The admin can pick any plan; a plan of another tenant is never valid.
        if self.plan_id and self.tenant_id and self.plan.tenant_id != self.tenant_id:
            raise ValidationError({"plan": "This plan belongs to another tenant."})


class ActivityEntry(models.Model):
    """One line of a subscriber's history: who did what, when, why, and what provisioning answered."""

    class Action(models.TextChoices):
        CREATED = "created", "Created"
        EDITED = "edited", "Edited"
        ACTIVATION = "activation", "Activation"
        REINSTATEMENT = "reinstatement", "Reinstatement"
        SUSPENDED = "suspended", "Suspended"
        TERMINATED = "terminated", "Terminated"

    class Outcome(models.TextChoices):
        SUCCEEDED = "succeeded", "Provisioned"
        REFUSED = "refused", "Refused by provisioning"
        UNAVAILABLE = "unavailable", "Provisioning unavailable"
        NOT_SET_UP = "not_set_up", "Provisioning not set up"

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="activity")
    at = models.DateTimeField(default=timezone.now)
    # None: the system (``manage.py activate_pending``), or a user deleted since (see actor_name).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=16, choices=Action.choices)
    # {field: [old, new]} as the staff saw them (a plan by its name).
    changes = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True)
    # Provisioning attempts only: the outcome, the upstream's HTTP status or the error, the key sent.
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True)
    upstream_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    idempotency_key = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["subscriber", "-at"], name="activity_subscriber_at")]
        verbose_name_plural = "activity entries"

    def __str__(self) -> str:
        return f"{self.get_action_display()} of subscriber {self.subscriber_id} at {self.at:%Y-%m-%d %H:%M}"

    @property
    def change_list(self) -> list[tuple[str, str, str]]:
        """(field's label, old, new) for each change, a status by its label."""
        statuses = dict(Subscriber.Status.choices)
        shown = []
        for name, (old, new) in self.changes.items():
            try:
                label = str(Subscriber._meta.get_field(name).verbose_name)
            except FieldDoesNotExist:
                label = name
            if name == "status":
                old, new = statuses.get(old, old), statuses.get(new, new)
            shown.append((label[:1].upper() + label[1:], old, new))
        return shown
