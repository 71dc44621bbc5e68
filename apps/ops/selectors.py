"""Reads of ops data for the admin (no side effects); breaker statuses come from ``apps.ops.breakers``."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.ops.models import BreakerResetAudit


def breaker_reset_audit(*, limit: int = 50) -> QuerySet[BreakerResetAudit]:
    """The most recent breaker resets, newest first."""
    return BreakerResetAudit.objects.select_related("user")[:limit]
