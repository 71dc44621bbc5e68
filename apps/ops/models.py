"""Ops data: circuit breaker configuration overrides, the reset audit, the reset permission, and the
breakers' shared state when there is no Redis.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from apps.ops.breakers import STATE_CLOSED
from apps.ops.breakers.config import CONFIG_FIELDS, validate_name

RESET_PERMISSION = "ops.reset_circuitbreaker"


def may_reset_breakers(user: Any) -> bool:
    """Whether ``user`` may see and reset breakers: active staff holding :data:`RESET_PERMISSION`."""
    return bool(user.is_active and user.is_staff and user.has_perm(RESET_PERMISSION))


def validate_breaker_name(value: str) -> None:
    try:
        validate_name(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class BreakerConfigOverride(models.Model):
    """Per-breaker settings edited by staff; an empty field keeps the settings/default value."""

    name = models.CharField(
        "breaker", max_length=63, unique=True, validators=[validate_breaker_name],
        help_text="Name of the circuit breaker, e.g. provisioning.",
    )  # fmt: skip
    fail_max = models.PositiveIntegerField(
        "failure threshold", null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="Consecutive failures that open the breaker.",
    )  # fmt: skip
    reset_timeout = models.FloatField(
        "recovery timeout (s)", null=True, blank=True, validators=[MinValueValidator(0.1)],
        help_text="Seconds open before a trial call is allowed (half-open).",
    )  # fmt: skip
    success_threshold = models.PositiveIntegerField(
        "success threshold", null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="Consecutive successful trial calls that close the breaker.",
    )  # fmt: skip
    request_timeout = models.FloatField(
        "request timeout (s)", null=True, blank=True, validators=[MinValueValidator(0.1)],
        help_text="Upper bound of one protected call, connect and read together.",
    )  # fmt: skip
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        verbose_name = "circuit breaker configuration"
        verbose_name_plural = "circuit breaker configurations"

    def __str__(self) -> str:
        return self.name

    def values(self) -> dict[str, Any]:
        """The fields set on this override (None: not overridden)."""
        return {field: getattr(self, field) for field in CONFIG_FIELDS}


class CircuitBreaker(BreakerConfigOverride):
    """The admin's "Circuit breakers" page and the holder of the reset permission; no table, no rows.

    Its name makes the page's URL and the permission's codename (``ops.reset_circuitbreaker``); the
    breakers themselves are :class:`apps.ops.breakers.Breaker`. A proxy, not an unmanaged model, so
    that nothing ever queries a table that does not exist (``dumpdata`` skips proxies).
    """

    class Meta:
        proxy = True
        default_permissions = ()
        permissions = [("reset_circuitbreaker", "Can reset circuit breakers")]
        verbose_name = "circuit breaker"
        verbose_name_plural = "circuit breakers"


class BreakerResetAudit(models.Model):
    """Who reset which breaker, when, how, and what state it was in before."""

    class Via(models.TextChoices):
        API = "api", "REST API"
        ADMIN = "admin", "Admin"
        CLI = "cli", "Command line"

    breaker = models.CharField(max_length=63, db_index=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=150, help_text="Username, 'api-token' or 'cli:<os user>'.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    via = models.CharField(max_length=8, choices=Via.choices)
    state_before = models.CharField(max_length=16)
    failure_count_before = models.PositiveIntegerField(default=0)
    shared = models.BooleanField(
        help_text="Whether the reset reached the shared state (Redis or the database)."
    )

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "circuit breaker reset"
        verbose_name_plural = "circuit breaker resets"

    def __str__(self) -> str:
        return f"{self.breaker} reset by {self.actor} at {self.at:%Y-%m-%d %H:%M:%S}"


class BreakerState(models.Model):
    """A breaker's state shared by every process without Redis (``apps/ops/breakers/database.py``)."""

    name = models.CharField(max_length=63, primary_key=True)
    state = models.CharField(max_length=16, default=STATE_CLOSED)
    failure_count = models.IntegerField(default=0)
    success_count = models.IntegerField(default=0)
    opened_at = models.DateTimeField(null=True)

    class Meta:
        default_permissions = ()

    def __str__(self) -> str:
        return f"{self.name}: {self.state}"
