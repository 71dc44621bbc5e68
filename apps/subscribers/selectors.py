"""Reads of a tenant's subscribers that pages share."""

from __future__ import annotations

from django.core.cache import cache
from django.db.models import Count

from apps.tenants.models import Tenant

from .models import Subscriber

# The status summary on the list page may lag changes by this long: it is an aggregate over every
# subscriber of the tenant, computed once per tenant and interval rather than on every page view.
# While Redis is unreachable the cache is bypassed and each view computes it.
STATUS_COUNTS_CACHE_SECONDS = 10


def subscriber_status_counts(*, tenant: Tenant) -> list[tuple[str, int]]:
    """(status label, count) for each status the tenant's subscribers have, in the statuses' order."""

    def count() -> dict[str, int]:
        rows = Subscriber.objects.filter(tenant=tenant).values_list("status").annotate(count=Count("id"))
        return dict(rows.order_by())

    counts = cache.get_or_set(f"subscribers:status-counts:{tenant.pk}", count, STATUS_COUNTS_CACHE_SECONDS)
    return [(label, counts[value]) for value, label in Subscriber.Status.choices if counts.get(value)]
