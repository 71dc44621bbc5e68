"""``manage.py activate_pending``: retry the activation of pending subscribers (e.g. from a CronJob).

Stops at the first "provisioning unavailable" answer (the upstream is down or its breaker is open:
hammering it helps nobody); the rest stay pending for the next run. Exits 1 when any subscriber
could not be activated, so a scheduler sees the failure.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.subscribers.models import Subscriber
from apps.subscribers.services import subscriber_activate
from apps.tenants.context import current_tenant


class Command(BaseCommand):
    help = "Retry provisioning of pending subscribers, oldest first."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="only this tenant (slug)")
        parser.add_argument("--limit", type=int, default=500, help="at most this many subscribers (500)")

    def handle(self, *args: Any, tenant: str | None, limit: int, **options: Any) -> None:
        if limit < 1:
            raise CommandError("--limit must be at least 1")
        pending = Subscriber.objects.filter(status=Subscriber.Status.PENDING, tenant__active=True)
        if tenant:
            pending = pending.filter(tenant__slug=tenant)
        pending = pending.select_related("tenant", "plan").order_by("created_at", "id")[:limit]

        activated = refused = 0
        deferred = None
        for subscriber in pending:
            token = current_tenant.set(subscriber.tenant)  # metrics and logs carry the tenant
            try:
                result = subscriber_activate(subscriber=subscriber)
            finally:
                current_tenant.reset(token)
            if result.activated:
                activated += 1
                self.stdout.write(f"activated {subscriber.tenant.slug}/{subscriber.pk} {subscriber.name}")
            elif result.retryable:
                deferred = result.message
                break
            else:
                refused += 1
                self.stderr.write(f"not activated {subscriber.tenant.slug}/{subscriber.pk}: {result.message}")

        summary = f"{activated} activated, {refused} refused"
        if deferred:
            summary += f"; stopped: {deferred}"
        if refused or deferred:
            raise CommandError(summary)
        self.stdout.write(self.style.SUCCESS(summary))
