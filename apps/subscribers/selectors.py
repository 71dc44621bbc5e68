"""Reads of a tenant's subscribers that pages share: counts, the filtered list, the plans' figures."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from django.core.cache import cache
from django.db.models import Count, Q, QuerySet

from apps.tenants.models import Tenant

from .models import ServicePlan, Subscriber

# The status and plan counts on the list page may lag changes by this long: they are an aggregate
# over every subscriber of the tenant, computed once per tenant and interval rather than on every
# page view. While Redis is unreachable the cache is bypassed and each view computes it.
STATUS_COUNTS_CACHE_SECONDS = 10

# The list's sort keys (``?sort=key`` or ``?sort=-key``) and the columns they order by; anything
# else sorts by the default. The primary key breaks ties, so pages never overlap.
SORTS = {
    "name": "name",
    "account": "account_number",
    "email": "email",
    "phone": "phone",
    "plan": "plan__name",
    "status": "status",
    "created": "created_at",
}
DEFAULT_SORT = "-created"
# ``?status=`` values: a status, or nothing for every subscriber but the terminated ones.
STATUS_FILTERS = {value for value, _label in Subscriber.Status.choices}
SEARCH_MAX_LENGTH = 100


def _tenant_counts(tenant: Tenant) -> dict[tuple[int, str], int]:
    def count() -> dict[tuple[int, str], int]:
        rows = (
            Subscriber.objects.filter(tenant=tenant)
            .values_list("plan_id", "status")
            .annotate(count=Count("id"))
            .order_by()
        )
        return {(plan_id, status): n for plan_id, status, n in rows}

    return cache.get_or_set(_counts_key(tenant.pk), count, STATUS_COUNTS_CACHE_SECONDS)


def _counts_key(tenant_id: int) -> str:
    return f"subscribers:counts:{tenant_id}"


def forget_counts(tenant_id: int) -> None:
    """A tenant's subscribers changed: the next list page counts them again."""
    cache.delete(_counts_key(tenant_id))


def subscriber_status_counts(*, tenant: Tenant) -> list[tuple[str, int]]:
    """(status label, count) for each status the tenant's subscribers have, in the statuses' order."""
    counts: Counter[str] = Counter()
    for (_plan, status), n in _tenant_counts(tenant).items():
        counts[status] += n
    return [(label, counts[value]) for value, label in Subscriber.Status.choices if counts.get(value)]


@dataclass(frozen=True)
class Choice:
    value: str
    label: str
    count: int


def list_filter_choices(*, tenant: Tenant) -> tuple[list[Choice], list[Choice]]:
    """The status filter's and the plan filter's choices with their counts (the default list, all
    but terminated, counts as "All"; a plan counts its subscribers that are not terminated)."""
    counts = _tenant_counts(tenant)
    by_status: Counter[str] = Counter()
    by_plan: Counter[int] = Counter()
    for (plan_id, status), n in counts.items():
        by_status[status] += n
        if status != Subscriber.Status.TERMINATED:
            by_plan[plan_id] += n
    current = sum(by_plan.values())
    statuses = [Choice("", "All", current)] + [
        Choice(value, label, by_status[value]) for value, label in Subscriber.Status.choices
    ]
    plans = [
        Choice(str(pk), name, by_plan[pk])
        for pk, name in ServicePlan.objects.filter(tenant=tenant).order_by("name").values_list("pk", "name")
    ]
    return statuses, [Choice("", "All plans", current), *plans]


@dataclass(frozen=True)
class ListQuery:
    """The list's filters and sort as the request gave them, each cleaned to a known value."""

    q: str = ""
    status: str = ""
    plan: str = ""
    sort: str = DEFAULT_SORT

    @classmethod
    def from_params(cls, params) -> ListQuery:
        status = params.get("status", "")
        plan = params.get("plan", "")
        sort = params.get("sort", "")
        return cls(
            q=params.get("q", "").strip()[:SEARCH_MAX_LENGTH],
            status=status if status in STATUS_FILTERS else "",
            plan=plan if plan.isascii() and plan.isdigit() and len(plan) < 19 else "",
            sort=sort if sort.removeprefix("-") in SORTS else DEFAULT_SORT,
        )

    def params(self, **override) -> dict[str, str]:
        """The non-default parameters, with ``override`` applied (for links that keep the rest)."""
        values = {"q": self.q, "status": self.status, "plan": self.plan, "sort": self.sort, **override}
        if values["sort"] == DEFAULT_SORT:
            values["sort"] = ""
        return {key: value for key, value in values.items() if value}


def subscriber_list(*, tenant: Tenant, query: ListQuery) -> QuerySet[Subscriber]:
    """The tenant's subscribers that the filters select, in the requested order."""
    subscribers = Subscriber.objects.filter(tenant=tenant).select_related("plan")
    if query.status:
        subscribers = subscribers.filter(status=query.status)
    else:
        subscribers = subscribers.exclude(status=Subscriber.Status.TERMINATED)
    if query.plan:
        subscribers = subscribers.filter(plan_id=int(query.plan))
    if query.q:
        subscribers = subscribers.filter(
            Q(name__icontains=query.q)
            | Q(email__icontains=query.q)
            | Q(phone__icontains=query.q)
            | Q(account_number__icontains=query.q)
            | Q(service_address__icontains=query.q)
        )
    descending = query.sort.startswith("-")
    column = SORTS[query.sort.removeprefix("-")]
    prefix = "-" if descending else ""
    return subscribers.order_by(f"{prefix}{column}", f"{prefix}id")


def plans_with_counts(*, tenant: Tenant) -> QuerySet[ServicePlan]:
    """The tenant's plans, each annotated with its subscribers' count per status and in all (one query)."""
    per_status = {
        value: Count("subscribers", filter=Q(subscribers__status=value))
        for value, _label in Subscriber.Status.choices
    }
    return (
        ServicePlan.objects.filter(tenant=tenant)
        .annotate(total=Count("subscribers"), **per_status)
        .order_by("name")
    )
