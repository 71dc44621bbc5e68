"""Values computed when Prometheus scrapes, and the registry a scrape reads.

``circuit_breaker_state{breaker}`` is read from ``apps.ops.breakers.all_statuses()`` at scrape
time: breaker state lives in Redis (shared by every worker and pod), so the worker answering the
scrape reads the same truth any other would, and no gauge files go stale when workers recycle.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.conf import settings
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from .multiprocess import ArchivingMultiProcessCollector

logger = logging.getLogger(__name__)

# The numeric code of each breaker state; an unknown state is reported as open (the cautious one).
BREAKER_STATE_CODES = {"closed": 0, "open": 1, "half-open": 2}


class CircuitBreakerStateCollector:
    """``circuit_breaker_state{breaker}``: 0 closed, 1 open, 2 half-open."""

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "circuit_breaker_state",
            "Circuit breaker state: 0 closed, 1 open, 2 half-open.",
            labels=["breaker"],
        )
        try:
            # Imported here: the breakers package must never be able to break a scrape.
            from apps.ops.breakers import all_statuses

            statuses = list(all_statuses())
        except Exception:
            logger.warning("circuit breaker states unavailable for this scrape", exc_info=True)
            statuses = []
        for status in statuses:
            family.add_metric([str(status.name)], BREAKER_STATE_CODES.get(str(status.state), 1))
        yield family


def scrape_registry() -> CollectorRegistry:
    """Everything one scrape exposes: recorded metrics (of every worker) plus scrape-time values."""
    registry = CollectorRegistry()
    directory = settings.PROMETHEUS_MULTIPROC_DIR
    if directory:
        registry.register(ArchivingMultiProcessCollector(directory))
    else:
        registry.register(REGISTRY)  # one process: its own registry holds every recorded value
    registry.register(CircuitBreakerStateCollector())
    return registry
