"""Subscriber activation: ask the network provisioning API to provision the subscriber.

``POST {PROVISIONING_API_URL}/subscribers`` through the circuit breaker ``provisioning``. A 2xx
answer makes the subscriber ``active``. Anything else (the API down, slow, answering 5xx, the
breaker open, or the API refusing the request with a 4xx) leaves the subscriber ``pending`` —
nothing is lost, and ``manage.py activate_pending`` or the Activate button tries again later. The
request carries an ``Idempotency-Key`` per subscriber, so a retry of a request whose answer was
lost does not provision twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from apps.ops import http, metrics

from .models import Subscriber

logger = logging.getLogger(__name__)

UNAVAILABLE_MESSAGE = (
    "Provisioning is temporarily unavailable, try again later. The subscriber stays pending."
)


@dataclass(frozen=True)
class ActivationResult:
    activated: bool
    message: str
    # Whether trying again later may succeed (the upstream or the breaker, not the request).
    retryable: bool = False


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


def subscriber_activate(*, subscriber: Subscriber) -> ActivationResult:
    """Provision a pending subscriber and mark it active; never raises for upstream trouble."""
    if subscriber.status == Subscriber.Status.ACTIVE:
        return ActivationResult(True, f"{subscriber.name} is already active.")
    if subscriber.status != Subscriber.Status.PENDING:
        return ActivationResult(
            False, f"Only pending subscribers can be activated ({subscriber.name} is {subscriber.status})."
        )
    base_url = settings.PROVISIONING_API_URL
    if not base_url:
        return ActivationResult(
            False, "Provisioning is not configured (PROVISIONING_API_URL); the subscriber stays pending."
        )

    headers = {"Idempotency-Key": f"subscriber-{subscriber.tenant.slug}-{subscriber.pk}"}
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
        logger.info("activation of subscriber %s deferred: provisioning breaker open", subscriber.pk)
        return ActivationResult(False, UNAVAILABLE_MESSAGE, retryable=True)
    except http.UpstreamTimeout as exc:
        metrics.record_provisioning("timeout")
        logger.warning("activation of subscriber %s failed: %s", subscriber.pk, exc)
        return ActivationResult(False, UNAVAILABLE_MESSAGE, retryable=True)
    except http.OutboundError as exc:
        metrics.record_provisioning("failure")
        logger.warning("activation of subscriber %s failed: %s", subscriber.pk, exc)
        return ActivationResult(False, UNAVAILABLE_MESSAGE, retryable=not isinstance(exc, http.InvalidURL))

    if not response.ok:
        metrics.record_provisioning("failure")
        logger.warning(
            "provisioning refused subscriber %s: HTTP %s %r",
            subscriber.pk,
            response.status,
            response.body[:200],
        )
        return ActivationResult(
            False, f"Provisioning refused the request (HTTP {response.status}); the subscriber stays pending."
        )

    metrics.record_provisioning("success")
    # Only a still-pending subscriber becomes active (a suspension in the meantime wins).
    updated = Subscriber.objects.filter(pk=subscriber.pk, status=Subscriber.Status.PENDING).update(
        status=Subscriber.Status.ACTIVE, updated_at=timezone.now()
    )
    subscriber.refresh_from_db(fields=["status", "updated_at"])
    if not updated and subscriber.status != Subscriber.Status.ACTIVE:
        return ActivationResult(
            False, f"{subscriber.name} changed to {subscriber.status} meanwhile; not activated."
        )
    logger.info("subscriber %s activated", subscriber.pk)
    return ActivationResult(True, f"{subscriber.name} is now active.")
