"""Writes of ops state: resetting circuit breakers, each reset audited.

Used by the REST API, the admin and the ``breakers`` command alike. ``actor`` is the user who asked,
or a label for callers without one (``"api-token"``, ``"cli:<os user>"``).
"""

from __future__ import annotations

import logging

from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError

from apps.ops import breakers
from apps.ops.breakers import BreakerStatus
from apps.ops.models import BreakerResetAudit

logger = logging.getLogger("apps.ops.breakers")


class UnknownBreaker(LookupError):
    """No breaker of that name is configured or has been used."""


def breaker_reset(*, name: str, actor: AbstractBaseUser | str, via: str) -> BreakerStatus:
    """Close breaker ``name`` and zero its counters (in every process when shared); its new status.

    Raises :class:`UnknownBreaker` for a name nobody configured or used (no breaker is created).
    """
    if not breakers.is_known(name):
        raise UnknownBreaker(f"unknown circuit breaker {name!r}")
    label = actor if isinstance(actor, str) else actor.get_username()
    before = breakers.reset_breaker(name, reason=f"reset by {label} via {via}")
    # The log line is the audit of last resort: it is written even when the database is not.
    logger.info(
        "circuit breaker %s reset by %s via %s (was %s, %d failures)",
        name,
        label,
        via,
        before.state,
        before.failure_count,
        extra={"breaker": name, "actor": label, "via": via, "state_before": before.state},
    )
    try:
        BreakerResetAudit.objects.create(
            breaker=name,
            actor=label[:150],
            user=None if isinstance(actor, str) else actor,
            via=via,
            state_before=before.state,
            failure_count_before=before.failure_count,
            shared=before.shared,
        )
    except DatabaseError:
        logger.exception("circuit breaker %s: the reset was done but its audit row could not be saved", name)
    return breakers.get_breaker(name).status()


def breaker_reset_all(*, actor: AbstractBaseUser | str, via: str) -> list[BreakerStatus]:
    """Reset every known breaker; their new statuses, sorted by name."""
    names = sorted(status.name for status in breakers.all_statuses())
    return [breaker_reset(name=name, actor=actor, via=via) for name in names]
