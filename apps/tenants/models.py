"""Tenants (the ISPs using the platform) and which users belong to which tenant."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

# A DNS label, so a slug can be a subdomain of TENANT_BASE_DOMAIN.
SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
slug_validator = RegexValidator(
    SLUG_PATTERN,
    "Lowercase letters, digits and inner hyphens; usable as a DNS label.",
)


class Tenant(models.Model):
    slug = models.CharField(max_length=63, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user works for exactly one tenant: isolation stays simple and absolute."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant.slug}"
