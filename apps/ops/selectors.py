"""Reads of ops state for the REST views, the admin and the commands (no side effects)."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.ops import breakers
from apps.ops.breakers import BreakerStatus
from apps.ops.models import BreakerResetAudit


def breaker_list() -> list[BreakerStatus]:
    """Every known circuit breaker with its live state, sorted by name."""
    return breakers.all_statuses()


def breaker_reset_audit(*, name: str | None = None, limit: int = 50) -> QuerySet[BreakerResetAudit]:
    """The most recent resets, newest first (of one breaker when ``name`` is given)."""
    audits = BreakerResetAudit.objects.select_related("user")
    if name is not None:
        audits = audits.filter(breaker=name)
    return audits[:limit]
