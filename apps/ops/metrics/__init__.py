"""Metrics: definitions, tenant-labelling middleware, the /metrics view, multiprocess upkeep.

Public API: :func:`record_subscriber_created` and :func:`record_provisioning` for business apps,
:func:`add_scrape_collector` for ops. Every import here is inside a function because the gunicorn
master imports ``apps.ops.metrics.multiprocess``, which runs this file first, without Django and
before prometheus_client may be imported (see that module).
"""

from __future__ import annotations

# Outcomes of a provisioning request. Anything else is recorded as "other" so a typo in a caller
# cannot create series.
PROVISIONING_OUTCOMES = frozenset({"success", "failure", "rejected", "timeout"})


def record_subscriber_created() -> None:
    """Count one subscriber created for the current tenant (``dotmac_subscribers_created_total``)."""
    from .definitions import SUBSCRIBERS_CREATED
    from .labels import current_tenant_label

    SUBSCRIBERS_CREATED.labels(tenant=current_tenant_label()).inc()


def record_provisioning(outcome: str) -> None:
    """Count one provisioning request of the current tenant (``dotmac_provisioning_requests_total``).

    ``outcome``: ``success`` (the upstream accepted it), ``failure`` (the call failed or the
    upstream refused), ``rejected`` (not attempted: the circuit breaker is open), ``timeout``.
    """
    from .definitions import PROVISIONING_REQUESTS
    from .labels import current_tenant_label

    label = outcome if outcome in PROVISIONING_OUTCOMES else "other"
    PROVISIONING_REQUESTS.labels(tenant=current_tenant_label(), outcome=label).inc()


def add_scrape_collector(collector: object) -> None:
    """Expose ``collector``'s values (computed at scrape time) in every ``/metrics`` answer of this
    process; ops parts register theirs when the app starts (the breakers' states)."""
    from .collectors import SCRAPE_COLLECTORS

    if collector not in SCRAPE_COLLECTORS:
        SCRAPE_COLLECTORS.append(collector)
