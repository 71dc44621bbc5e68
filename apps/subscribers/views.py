"""Views for a tenant's staff: the list and its tools (filters, sort, CSV export, bulk actions), create,
detail with the history, edit, the lifecycle's actions, and the plans page.

Every query is scoped by ``request.tenant``; a user may only work in the tenant they belong to, so
another tenant's objects are simply not found (404), and another tenant's ids in a bulk action are
ignored.
"""

from __future__ import annotations

import csv
import logging
import time
from functools import wraps
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from apps.ops.metrics import record_subscriber_created

from . import selectors, services
from .forms import ReasonForm, SubscriberForm
from .models import Subscriber

logger = logging.getLogger(__name__)

PAGE_SIZE = 25
# A bulk action acts on at most this many subscribers (a page's worth, with room to spare).
BULK_MAX = 100
# A bulk activation starts no provisioning request after this long: with the last request's own
# bound (the breaker's request_timeout, 30 s by default) the answer stays within the ingress' 65 s.
BULK_ACTIVATION_SECONDS = 20
HISTORY_SHOWN = 100
# The list's columns: (sort key, heading).
COLUMNS = [
    ("name", "Name"),
    ("account", "Account"),
    ("email", "Email"),
    ("phone", "Phone"),
    ("plan", "Plan"),
    ("status", "Status"),
    ("created", "Created"),
]


def tenant_staff_required(view):
    """Logged in, and a member of the tenant this request resolved to. The answers hold subscriber
    data: no cache, shared or the browser's, keeps them (``Cache-Control: no-store``)."""

    @never_cache
    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        tenant = getattr(request, "tenant", None)
        membership = getattr(request.user, "membership", None)
        if tenant is None or membership is None or membership.tenant_id != tenant.pk:
            raise PermissionDenied("You are not a member of this tenant.")
        return view(request, *args, **kwargs)

    return wrapper


def _subscriber_or_404(request, pk: int) -> Subscriber:
    return get_object_or_404(Subscriber.objects.select_related("plan"), tenant=request.tenant, pk=pk)


def _columns(query: selectors.ListQuery) -> list[dict]:
    """Each column heading's sort link (ascending first, then the other way) and its aria-sort."""
    columns = []
    for key, heading in COLUMNS:
        current = query.sort.removeprefix("-") == key
        descending = query.sort.startswith("-")
        next_sort = f"-{key}" if current and not descending else key
        columns.append(
            {
                "heading": heading,
                "url": "?" + urlencode(query.params(sort=next_sort)),
                "aria_sort": ("descending" if descending else "ascending") if current else "",
            }
        )
    return columns


@tenant_staff_required
@require_http_methods(["GET", "HEAD"])
def subscriber_list(request):
    query = selectors.ListQuery.from_params(request.GET)
    subscribers = selectors.subscriber_list(tenant=request.tenant, query=query)
    page = Paginator(subscribers, PAGE_SIZE).get_page(request.GET.get("page"))
    statuses, plans = selectors.list_filter_choices(tenant=request.tenant)
    return render(
        request,
        "subscribers/list.html",
        {
            "page": page,
            "query": query.q,
            "filters": query,
            "status_counts": selectors.subscriber_status_counts(tenant=request.tenant),
            "statuses": statuses,
            "plans": plans,
            "columns": _columns(query),
            "kept_params": urlencode(query.params()),
            "filtered": bool(query.params(sort="")),
        },
    )


class _Echo:
    """A file whose write returns the line: csv.writer then yields rows as text to stream."""

    def write(self, value: str) -> str:
        return value


# A cell a spreadsheet would read as a formula (or a command, by DDE) starts with one of these.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
EXPORT_COLUMNS = [
    ("Account number", "account_number"),
    ("Name", "name"),
    ("Email", "email"),
    ("Phone", "phone"),
    ("Service address", "service_address"),
    ("Plan", "plan__name"),
    ("Monthly price", "plan__monthly_price"),
    ("Currency", "plan__currency"),
    ("Status", "status"),
    ("Created (UTC)", "created_at"),
]


def spreadsheet_safe(value) -> str:
    """The cell as text, with a leading apostrophe when a spreadsheet would run it as a formula."""
    text = value.isoformat(timespec="seconds") if hasattr(value, "isoformat") else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


@tenant_staff_required
@require_http_methods(["GET", "HEAD"])
def subscriber_export(request):
    """The filtered list (every page of it) as CSV, streamed row by row."""
    query = selectors.ListQuery.from_params(request.GET)
    rows = (
        selectors.subscriber_list(tenant=request.tenant, query=query)
        .values_list(*(field for _heading, field in EXPORT_COLUMNS))
        .iterator(chunk_size=2000)
    )
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow([heading for heading, _field in EXPORT_COLUMNS])
        for row in rows:
            yield writer.writerow([spreadsheet_safe(value) for value in row])

    filename = f"subscribers-{request.tenant.slug}-{timezone.now():%Y%m%d-%H%M}.csv"
    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    # The search text may be a person's name or email: the log says only that there was one.
    logger.info("subscribers exported", extra={"filters": query.params(q="searched" if query.q else "")})
    return response


@tenant_staff_required
@require_http_methods(["GET", "HEAD", "POST"])
def subscriber_create(request):
    form = SubscriberForm(request.POST or None, tenant=request.tenant)
    if (
        request.method == "POST"
        and form.is_valid()
        and (subscriber := form.save_unless_duplicate(actor=request.user))
    ):
        record_subscriber_created()  # after the commit: only subscribers that exist are counted
        logger.info("subscriber created", extra={"subscriber_id": subscriber.pk})
        messages.success(request, f"Subscriber {subscriber.name} created.")
        return redirect("subscribers:detail", pk=subscriber.pk)
    return render(request, "subscribers/form.html", {"form": form, "title": "New subscriber"})


@tenant_staff_required
@require_http_methods(["GET", "HEAD"])
def subscriber_detail(request, pk: int):
    subscriber = _subscriber_or_404(request, pk)
    history = list(subscriber.activity.all()[: HISTORY_SHOWN + 1])
    return render(
        request,
        "subscribers/detail.html",
        {
            "subscriber": subscriber,
            "history": history[:HISTORY_SHOWN],
            "history_truncated": len(history) > HISTORY_SHOWN,
            "last_attempt": next((entry for entry in history if entry.outcome), None),
        },
    )


TERMINATED_IS_READ_ONLY = "A terminated subscriber is kept for the record and can no longer be changed."


@tenant_staff_required
@require_http_methods(["GET", "HEAD", "POST"])
def subscriber_edit(request, pk: int):
    subscriber = _subscriber_or_404(request, pk)
    if subscriber.status == Subscriber.Status.TERMINATED:
        messages.warning(request, TERMINATED_IS_READ_ONLY)
        return redirect("subscribers:detail", pk=subscriber.pk)
    form = SubscriberForm(request.POST or None, instance=subscriber, tenant=request.tenant)
    if request.method == "POST" and form.is_valid() and form.save_unless_duplicate(actor=request.user):
        messages.success(request, "Changes saved.")
        return redirect("subscribers:detail", pk=subscriber.pk)
    return render(request, "subscribers/form.html", {"form": form, "title": f"Edit {subscriber.name}"})


def _confirmed_transition(request, pk: int, *, allowed, act, verb: str, consequence: str):
    """GET: the confirmation page with its reason field; POST: the transition, once confirmed."""
    subscriber = _subscriber_or_404(request, pk)
    if subscriber.status not in allowed:
        messages.warning(
            request, f"{subscriber.name} is {subscriber.get_status_display().lower()}: cannot {verb.lower()}."
        )
        return redirect("subscribers:detail", pk=subscriber.pk)
    form = ReasonForm(
        request.POST if request.method == "POST" else None,
        confirm_label=f"Yes, {verb.lower()} {subscriber.name}",
    )
    if request.method == "POST" and form.is_valid():
        result = act(subscriber=subscriber, reason=form.cleaned_data["reason"], actor=request.user)
        (messages.success if result.done else messages.warning)(request, result.message)
        return redirect("subscribers:detail", pk=subscriber.pk)
    return render(
        request,
        "subscribers/confirm.html",
        {"subscriber": subscriber, "form": form, "verb": verb, "consequence": consequence},
    )


@tenant_staff_required
@require_http_methods(["GET", "HEAD", "POST"])
def subscriber_suspend(request, pk: int):
    return _confirmed_transition(
        request,
        pk,
        allowed=services.SUSPENDABLE,
        act=services.subscriber_suspend,
        verb="Suspend",
        consequence=(
            "The subscriber is marked suspended here until reinstated; the network is not told "
            "(provisioning has no suspension call yet)."
        ),
    )


@tenant_staff_required
@require_http_methods(["GET", "HEAD", "POST"])
def subscriber_terminate(request, pk: int):
    return _confirmed_transition(
        request,
        pk,
        allowed=services.TERMINABLE,
        act=services.subscriber_terminate,
        verb="Terminate",
        consequence=(
            "Termination is final: the record is kept for the history but leaves the list, and the "
            "subscriber cannot be reinstated."
        ),
    )


@tenant_staff_required
@require_POST
def subscriber_activate(request, pk: int):
    """Provision the subscriber; if provisioning is unavailable it stays pending and the page says so."""
    subscriber = _subscriber_or_404(request, pk)
    result = services.subscriber_activate(subscriber=subscriber, actor=request.user)
    (messages.success if result.activated else messages.warning)(request, result.message)
    return redirect("subscribers:detail", pk=subscriber.pk)


@tenant_staff_required
@require_POST
def subscriber_reinstate(request, pk: int):
    """Provision a suspended subscriber again; if provisioning is unavailable it stays suspended."""
    subscriber = _subscriber_or_404(request, pk)
    result = services.subscriber_reinstate(subscriber=subscriber, actor=request.user)
    (messages.success if result.activated else messages.warning)(request, result.message)
    return redirect("subscribers:detail", pk=subscriber.pk)


# action: (label, the statuses it applies to)
BULK_ACTIONS = {
    "activate": ("Retry activation", (Subscriber.Status.PENDING,)),
    "suspend": ("Suspend", services.SUSPENDABLE),
}


def _selected_ids(request) -> list[int]:
    values = request.POST.getlist("ids")[:BULK_MAX]
    return [int(value) for value in values if value.isascii() and value.isdigit() and len(value) < 19]


@tenant_staff_required
@require_POST
def subscriber_bulk(request):
    """A bulk action on the subscribers ticked in the list: first a confirmation page listing those it
    applies to (only this tenant's, only those in a status it applies to), then the action."""
    action = request.POST.get("action", "")
    if action not in BULK_ACTIONS:
        messages.warning(request, "Choose an action for the selected subscribers.")
        return redirect("subscribers:list")
    label, allowed = BULK_ACTIONS[action]
    ids = _selected_ids(request)
    chosen = list(
        Subscriber.objects.filter(tenant=request.tenant, pk__in=ids, status__in=allowed)
        .select_related("plan", "tenant")
        .order_by("created_at", "id")
    )
    if not chosen:
        messages.warning(request, f"None of the selected subscribers can be given “{label}”.")
        return redirect("subscribers:list")
    confirming = request.POST.get("step") == "confirm"
    form = ReasonForm(
        request.POST if confirming else None,
        confirm_label=f"Yes, {label.lower()} for these {len(chosen)} subscribers",
    )
    if action == "activate":
        del form.fields["reason"]
    if confirming and form.is_valid():
        if action == "activate":
            _bulk_activate(request, chosen)
        else:
            _bulk_suspend(request, chosen, form.cleaned_data["reason"])
        return redirect("subscribers:list")
    return render(
        request,
        "subscribers/bulk_confirm.html",
        {"action": action, "label": label, "chosen": chosen, "form": form, "skipped": len(ids) - len(chosen)},
    )


def _bulk_activate(request, chosen: list[Subscriber]) -> None:
    """As ``manage.py activate_pending``: stop at the first "unavailable" (the rest stay pending),
    and start no new request after ``BULK_ACTIVATION_SECONDS`` (the answer must reach the browser
    before the ingress gives up on it)."""
    activated, failures = 0, []
    started = time.monotonic()
    for done, subscriber in enumerate(chosen):
        if time.monotonic() - started > BULK_ACTIVATION_SECONDS:
            failures.append(
                f"Stopped to answer in time: {len(chosen) - done} not tried yet stay pending; "
                "select them again, or let the scheduled activation run retry them."
            )
            break
        result = services.subscriber_activate(subscriber=subscriber, actor=request.user)
        if result.activated:
            activated += 1
            continue
        failures.append(f"{subscriber.name}: {result.message}")
        if result.retryable:
            break
    (messages.success if activated == len(chosen) else messages.warning)(
        request, f"{activated} of {len(chosen)} subscribers activated."
    )
    for failure in failures:
        messages.warning(request, failure)


def _bulk_suspend(request, chosen: list[Subscriber], reason: str) -> None:
    suspended = sum(
        services.subscriber_suspend(subscriber=subscriber, reason=reason, actor=request.user).done
        for subscriber in chosen
    )
    messages.success(request, f"{suspended} of {len(chosen)} subscribers suspended.")


@tenant_staff_required
@require_http_methods(["GET", "HEAD"])
def plan_list(request):
    return render(
        request,
        "subscribers/plans.html",
        {
            "plans": selectors.plans_with_counts(tenant=request.tenant),
            "statuses": Subscriber.Status.choices,
        },
    )
