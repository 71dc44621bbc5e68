"""Metrics: definitions, tenant-labelling middleware, the /metrics view, multiprocess upkeep.

Public API for business apps: :func:`record_subscriber_created`, :func:`record_provisioning` and
:func:`tenant_label`. Nothing is imported at module level: the gunicorn master imports
``apps.ops.metrics.multiprocess`` from its hooks without Django, and prometheus_client must not be
imported before ``PROMETHEUS_MULTIPROC_DIR`` is set.
"""

from __future__ import annotations

# Outcomes of a provisioning request. Anything else is recorded as "other" so a typo in a caller
# cannot create series.
PROVISIONING_OUTCOMES = frozenset({"success", "failure", "rejected", "timeout"})


def tenant_label(slug: str | None) -> str:
    """The bounded ``tenant`` label value for a tenant slug (``none`` without one, ``other`` past the cap)."""
    from .labels import tenant_label as bounded

    return bounded(slug)


def _current_tenant_label() -> str:
    from apps.ops.context import current_tenant_slug

    return tenant_label(current_tenant_slug())


def record_subscriber_created() -> None:
    """Count one subscriber created for the current tenant (``dotmac_subscribers_created_total``)."""
    from .definitions import SUBSCRIBERS_CREATED

    SUBSCRIBERS_CREATED.labels(tenant=_current_tenant_label()).inc()


def record_provisioning(outcome: str) -> None:
    """Count one provisioning request of the current tenant (``dotmac_provisioning_requests_total``).

    ``outcome``: ``success`` (the upstream accepted it), ``failure`` (the call failed or the
    upstream refused), ``rejected`` (not attempted: the circuit breaker is open), ``timeout``.
    """
    from .definitions import PROVISIONING_REQUESTS

    label = outcome if outcome in PROVISIONING_OUTCOMES else "other"
    PROVISIONING_REQUESTS.labels(tenant=_current_tenant_label(), outcome=label).inc()


def add_scrape_collector(collector: object) -> None:
    """Expose ``collector``'s values (computed at scrape time) in every ``/metrics`` answer of this
    process; ops parts register theirs when the app starts (the breakers' states)."""
    from .collectors import SCRAPE_COLLECTORS

    if collector not in SCRAPE_COLLECTORS:
        SCRAPE_COLLECTORS.append(collector)
