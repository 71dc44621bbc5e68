"""Metrics (docs/ARCHITECTURE.md, "Metrics"): ``record_subscriber_created`` and ``record_provisioning``
for business apps, ``add_scrape_collector`` for ops. Every import here is inside a function: the
gunicorn master imports ``.multiprocess``, which runs this file first, without Django and before
prometheus_client may be imported.
"""

from __future__ import annotations

# Anything else is recorded as "other", so a typo in a caller cannot create series.
PROVISIONING_OUTCOMES = frozenset({"success", "failure", "rejected", "timeout"})


def record_subscriber_created() -> None:
    """Count one subscriber created for the current tenant."""
    from .definitions import SUBSCRIBERS_CREATED
    from .labels import current_tenant_label

    SUBSCRIBERS_CREATED.labels(tenant=current_tenant_label()).inc()


def record_provisioning(outcome: str) -> None:
    """Count one provisioning request of the current tenant: ``success`` (the upstream accepted it),
    ``failure`` (the call failed or was refused), ``rejected`` (the breaker is open), ``timeout``."""
    from .definitions import PROVISIONING_REQUESTS
    from .labels import current_tenant_label

    label = outcome if outcome in PROVISIONING_OUTCOMES else "other"
    PROVISIONING_REQUESTS.labels(tenant=current_tenant_label(), outcome=label).inc()


def add_scrape_collector(collector: object) -> None:
    """Add ``collector`` (values computed at scrape time) to every ``/metrics`` answer of this process."""
    from .collectors import SCRAPE_COLLECTORS

    if collector not in SCRAPE_COLLECTORS:
        SCRAPE_COLLECTORS.append(collector)
