"""A subscriber's lifecycle and its history: every change of status goes through here.

pending → active (activation) → suspended → active (reinstatement) … and any of them → terminated,
which is final. Activation and reinstatement ask the network provisioning API to provision the
subscriber, ``POST {PROVISIONING_API_URL}/subscribers`` through the circuit breaker ``provisioning``:
a 2xx answer makes the subscriber ``active``; anything else (the API down, slow, answering 5xx, the
breaker open, or the API refusing the request with a 4xx) leaves the status as it was — nothing is
lost, and ``manage.py activate_pending`` or the Activate button tries again later.

Each request carries an ``Idempotency-Key``: the activation's is the subscriber's own, and each
reinstatement's names the suspension it ends, so a retry of a request whose answer was lost does
not provision twice, and the next reinstatement is a new request.

Every creation, edit, transition and provisioning attempt writes an :class:`ActivityEntry`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.ops import http, metrics

from .models import ActivityEntry, Subscriber

logger = logging.getLogger(__name__)

UNAVAILABLE_MESSAGE = (
    "Provisioning is temporarily unavailable, try again later. The subscriber stays pending."
)
NOT_SET_UP_MESSAGE = "Provisioning is not set up for this ISP yet — ask your platform administrator."

# Which statuses each staff action starts from.
SUSPENDABLE = (Subscriber.Status.PENDING, Subscriber.Status.ACTIVE)
TERMINABLE = (Subscriber.Status.PENDING, Subscriber.Status.ACTIVE, Subscriber.Status.SUSPENDED)


@dataclass(frozen=True)
class ActivationResult:
    activated: bool
    message: str
    # Whether trying again later may succeed (the upstream or the breaker, not the request).
    retryable: bool = False


@dataclass(frozen=True)
class TransitionResult:
    done: bool
    message: str


def _actor_fields(actor) -> dict:
    if actor is None or not getattr(actor, "is_authenticated", False):
        return {"actor": None, "actor_name": ""}
    return {"actor": actor, "actor_name": actor.get_username()}


def record(subscriber: Subscriber, action: str, *, actor=None, **fields) -> ActivityEntry:
    """Add a line to the subscriber's history (``fields``: changes, reason, outcome, ...)."""
    return ActivityEntry.objects.create(
        subscriber=subscriber, action=action, **_actor_fields(actor), **fields
    )


def _payload(subscriber: Subscriber) -> dict:
    plan = subscriber.plan
    return {
        "subscriber_id": subscriber.pk,
        "tenant": subscriber.tenant.slug,
        "name": subscriber.name,
        "email": subscriber.email,
        "plan": {
            "id": plan.pk,
            "name": plan.name,
            "download_mbps": plan.download_mbps,
            "upload_mbps": plan.upload_mbps,
        },
    }


def activation_key(subscriber: Subscriber) -> str:
    return f"subscriber-{subscriber.tenant.slug}-{subscriber.pk}"


def reinstatement_key(subscriber: Subscriber) -> str:
    return f"{activation_key(subscriber)}-reinstatement-{subscriber.suspensions}"


@dataclass(frozen=True)
class _Provisioned:
    ok: bool
    outcome: str
    message: str = ""
    retryable: bool = False
    upstream_status: int | None = None
    error: str = ""


def _provision(subscriber: Subscriber, key: str, stays: str) -> _Provisioned:
    """One request to the provisioning API; never raises for upstream trouble. ``stays`` ends the
    staff's message on failure ("The subscriber stays pending.")."""
    base_url = settings.PROVISIONING_API_URL
    if not base_url:
        return _Provisioned(False, ActivityEntry.Outcome.NOT_SET_UP, f"{NOT_SET_UP_MESSAGE} {stays}")
    unavailable = UNAVAILABLE_MESSAGE.replace("The subscriber stays pending.", stays)
    headers = {"Idempotency-Key": key}
    if settings.PROVISIONING_API_TOKEN:
        headers["Authorization"] = f"Bearer {settings.PROVISIONING_API_TOKEN}"
    try:
        response = http.request(
            "POST",
            f"{base_url.rstrip('/')}/subscribers",
            breaker=settings.PROVISIONING_BREAKER,
            json=_payload(subscriber),
            headers=headers,
        )
    except http.CircuitOpenError:
        metrics.record_provisioning("rejected")
        logger.info("provisioning of subscriber %s deferred: provisioning breaker open", subscriber.pk)
        return _Provisioned(
            False,
            ActivityEntry.Outcome.UNAVAILABLE,
            unavailable,
            True,
            error="Not called: too many recent failures",
        )
    except http.OutboundError as exc:
        metrics.record_provisioning("timeout" if isinstance(exc, http.UpstreamTimeout) else "failure")
        logger.warning("provisioning of subscriber %s failed: %s", subscriber.pk, exc)
        return _Provisioned(
            False,
            ActivityEntry.Outcome.UNAVAILABLE,
            unavailable,
            retryable=not isinstance(exc, http.InvalidURL),
            upstream_status=getattr(exc, "status", None),
            error=_describe(exc),
        )
    if not response.ok:
        metrics.record_provisioning("failure")
        logger.warning(
            "provisioning refused subscriber %s: HTTP %s %r",
            subscriber.pk,
            response.status,
            response.body[:200],
        )
        return _Provisioned(
            False,
            ActivityEntry.Outcome.REFUSED,
            f"Provisioning refused the request (HTTP {response.status}). {stays}",
            upstream_status=response.status,
            error=_printable(response.body[:500].decode("utf-8", "replace")),
        )
    metrics.record_provisioning("success")
    return _Provisioned(True, ActivityEntry.Outcome.SUCCEEDED, upstream_status=response.status)


def _printable(text: str) -> str:
    """The upstream's own words, on one line, without the control characters (NUL, bidi overrides)
    the database or the page would choke on."""
    return "".join(character if character.isprintable() else " " for character in text).strip()


def _describe(exc: http.OutboundError) -> str:
    """The failure in staff's words (the exception's own text names internal addresses)."""
    for kind, words in (
        (http.UpstreamTimeout, "No answer in time"),
        (http.UpstreamConnectionError, "Could not connect"),
        (http.UpstreamServerError, "Server error"),
        (http.UpstreamProtocolError, "Unreadable answer"),
        (http.InvalidURL, "The provisioning address is not valid: ask your platform administrator"),
    ):
        if isinstance(exc, kind):
            return words
    return "Request failed"


def _record_attempt(subscriber, action, attempt: _Provisioned, key: str, actor, changes=None) -> None:
    record(
        subscriber,
        action,
        actor=actor,
        changes=changes or {},
        outcome=attempt.outcome,
        upstream_status=attempt.upstream_status,
        error=attempt.error,
        idempotency_key=key if attempt.outcome != ActivityEntry.Outcome.NOT_SET_UP else "",
    )


def subscriber_activate(*, subscriber: Subscriber, actor=None) -> ActivationResult:
    """Provision a pending subscriber and mark it active; never raises for upstream trouble."""
    if subscriber.status == Subscriber.Status.ACTIVE:
        return ActivationResult(True, f"{subscriber.name} is already active.")
    if subscriber.status != Subscriber.Status.PENDING:
        return ActivationResult(
            False,
            f"Only pending subscribers can be activated ({subscriber.name} is "
            f"{subscriber.get_status_display().lower()}).",
        )
    key = activation_key(subscriber)
    attempt = _provision(subscriber, key, "The subscriber stays pending.")
    if not attempt.ok:
        _record_attempt(subscriber, ActivityEntry.Action.ACTIVATION, attempt, key, actor)
        return ActivationResult(False, attempt.message, attempt.retryable)

    # Only a still-pending subscriber becomes active (a suspension in the meantime wins).
    with transaction.atomic():
        updated = Subscriber.objects.filter(pk=subscriber.pk, status=Subscriber.Status.PENDING).update(
            status=Subscriber.Status.ACTIVE, updated_at=timezone.now()
        )
        changes = {"status": ["pending", "active"]} if updated else {}
        _record_attempt(subscriber, ActivityEntry.Action.ACTIVATION, attempt, key, actor, changes)
    subscriber.refresh_from_db(fields=["status", "updated_at"])
    if not updated and subscriber.status != Subscriber.Status.ACTIVE:
        return ActivationResult(
            False,
            f"{subscriber.name} changed to {subscriber.get_status_display().lower()} meanwhile; "
            "not activated.",
        )
    logger.info("subscriber %s activated", subscriber.pk)
    return ActivationResult(True, f"{subscriber.name} is now active.")


def subscriber_reinstate(*, subscriber: Subscriber, actor=None) -> ActivationResult:
    """Provision a suspended subscriber again and mark it active (its own key per suspension)."""
    if subscriber.status != Subscriber.Status.SUSPENDED:
        return ActivationResult(
            False,
            f"Only suspended subscribers can be reinstated ({subscriber.name} is "
            f"{subscriber.get_status_display().lower()}).",
        )
    # Suspended before it was ever provisioned: an activation whose answer was lost may have reached
    # the upstream, so its key, not a new one.
    provisioned = subscriber.activity.filter(outcome=ActivityEntry.Outcome.SUCCEEDED).exists()
    key = reinstatement_key(subscriber) if provisioned else activation_key(subscriber)
    attempt = _provision(subscriber, key, "The subscriber stays suspended.")
    if not attempt.ok:
        _record_attempt(subscriber, ActivityEntry.Action.REINSTATEMENT, attempt, key, actor)
        return ActivationResult(False, attempt.message, attempt.retryable)
    with transaction.atomic():
        # The suspension this request ends, and no other (a new one in the meantime wins).
        updated = Subscriber.objects.filter(
            pk=subscriber.pk, status=Subscriber.Status.SUSPENDED, suspensions=subscriber.suspensions
        ).update(status=Subscriber.Status.ACTIVE, updated_at=timezone.now())
        changes = {"status": ["suspended", "active"]} if updated else {}
        _record_attempt(subscriber, ActivityEntry.Action.REINSTATEMENT, attempt, key, actor, changes)
    subscriber.refresh_from_db(fields=["status", "updated_at", "suspensions"])
    if not updated:
        return ActivationResult(
            False,
            f"{subscriber.name} changed to {subscriber.get_status_display().lower()} meanwhile; "
            "not reinstated.",
        )
    logger.info("subscriber %s reinstated", subscriber.pk)
    return ActivationResult(True, f"{subscriber.name} is active again.")


def _transition(subscriber: Subscriber, *, to: str, allowed, action: str, reason: str, actor) -> bool:
    """Change the status if it is still one of ``allowed`` (checked under a row lock), with its
    history line in the same transaction."""
    with transaction.atomic():
        current = Subscriber.objects.select_for_update().only("status").get(pk=subscriber.pk)
        if current.status not in allowed:
            subscriber.status = current.status
            return False
        update = {"status": to, "updated_at": timezone.now()}
        if to == Subscriber.Status.SUSPENDED:
            update["suspensions"] = F("suspensions") + 1
        Subscriber.objects.filter(pk=subscriber.pk).update(**update)
        record(subscriber, action, actor=actor, changes={"status": [current.status, to]}, reason=reason)
    subscriber.refresh_from_db(fields=["status", "updated_at", "suspensions"])
    return True


def subscriber_suspend(*, subscriber: Subscriber, reason: str, actor=None) -> TransitionResult:
    if _transition(
        subscriber,
        to=Subscriber.Status.SUSPENDED,
        allowed=SUSPENDABLE,
        action=ActivityEntry.Action.SUSPENDED,
        reason=reason,
        actor=actor,
    ):
        logger.info("subscriber %s suspended", subscriber.pk)
        return TransitionResult(True, f"{subscriber.name} is suspended.")
    return TransitionResult(
        False, f"{subscriber.name} is {subscriber.get_status_display().lower()}: not suspended."
    )


def subscriber_terminate(*, subscriber: Subscriber, reason: str, actor=None) -> TransitionResult:
    if _transition(
        subscriber,
        to=Subscriber.Status.TERMINATED,
        allowed=TERMINABLE,
        action=ActivityEntry.Action.TERMINATED,
        reason=reason,
        actor=actor,
    ):
        logger.info("subscriber %s terminated", subscriber.pk)
        return TransitionResult(True, f"{subscriber.name} is terminated. The record is kept.")
    return TransitionResult(False, f"{subscriber.name} is already terminated.")
