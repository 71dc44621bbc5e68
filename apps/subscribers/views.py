"""Views for a tenant's staff: list, create, detail, edit, suspend, activate.

Every query is scoped by ``request.tenant``; a user may only work in the tenant they belong to, so
another tenant's objects are simply not found (404).
"""

from __future__ import annotations

import logging
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from apps.ops.metrics import record_subscriber_created

from . import services
from .forms import SubscriberForm
from .models import Subscriber
from .selectors import subscriber_status_counts

logger = logging.getLogger(__name__)

PAGE_SIZE = 25


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


@tenant_staff_required
@require_http_methods(["GET", "HEAD"])
def subscriber_list(request):
    query = request.GET.get("q", "").strip()[:100]
    subscribers = Subscriber.objects.filter(tenant=request.tenant).select_related("plan")
    if query:
        subscribers = subscribers.filter(Q(name__icontains=query) | Q(email__icontains=query))
    page = Paginator(subscribers, PAGE_SIZE).get_page(request.GET.get("page"))
    status_counts = subscriber_status_counts(tenant=request.tenant)
    return render(
        request, "subscribers/list.html", {"page": page, "query": query, "status_counts": status_counts}
    )


@tenant_staff_required
@require_http_methods(["GET", "HEAD", "POST"])
def subscriber_create(request):
    form = SubscriberForm(request.POST or None, tenant=request.tenant)
    if request.method == "POST" and form.is_valid() and (subscriber := form.save_unless_duplicate()):
        record_subscriber_created()  # after the commit: only subscribers that exist are counted
        logger.info("subscriber created", extra={"subscriber_id": subscriber.pk})
        messages.success(request, f"Subscriber {subscriber.name} created.")
        return redirect("subscribers:detail", pk=subscriber.pk)
    return render(request, "subscribers/form.html", {"form": form, "title": "New subscriber"})


@tenant_staff_required
@require_http_methods(["GET", "HEAD"])
def subscriber_detail(request, pk: int):
    subscriber = _subscriber_or_404(request, pk)
    return render(request, "subscribers/detail.html", {"subscriber": subscriber})


@tenant_staff_required
@require_http_methods(["GET", "HEAD", "POST"])
def subscriber_edit(request, pk: int):
    subscriber = _subscriber_or_404(request, pk)
    form = SubscriberForm(request.POST or None, instance=subscriber, tenant=request.tenant)
    if request.method == "POST" and form.is_valid() and form.save_unless_duplicate():
        messages.success(request, "Changes saved.")
        return redirect("subscribers:detail", pk=subscriber.pk)
    return render(request, "subscribers/form.html", {"form": form, "title": f"Edit {subscriber.name}"})


@tenant_staff_required
@require_POST
def subscriber_suspend(request, pk: int):
    subscriber = _subscriber_or_404(request, pk)
    if subscriber.status != Subscriber.Status.SUSPENDED:
        subscriber.status = Subscriber.Status.SUSPENDED
        subscriber.save(update_fields=["status", "updated_at"])
        messages.success(request, f"{subscriber.name} is suspended.")
    return redirect("subscribers:detail", pk=subscriber.pk)


@tenant_staff_required
@require_POST
def subscriber_activate(request, pk: int):
    """Provision the subscriber; if provisioning is unavailable it stays pending and the page says so."""
    subscriber = _subscriber_or_404(request, pk)
    result = services.subscriber_activate(subscriber=subscriber)
    (messages.success if result.activated else messages.warning)(request, result.message)
    return redirect("subscribers:detail", pk=subscriber.pk)
