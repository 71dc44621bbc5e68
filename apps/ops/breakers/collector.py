"""``circuit_breaker_state{breaker}``, computed when Prometheus scrapes.

Read from :func:`~apps.ops.breakers.all_statuses` at scrape time: breaker state lives in Redis
(shared by every worker and pod), so the worker answering the scrape reads the same truth any other
would, and no gauge files go stale when workers recycle. The ops app adds it to every scrape
(``apps.ops.metrics.add_scrape_collector``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from . import all_statuses
from .status import STATE_CODES, STATE_OPEN

logger = logging.getLogger(__name__)

_CODES_HELP = ", ".join(f"{code} {state}" for state, code in STATE_CODES.items())


class CircuitBreakerStateCollector:
    """One sample per known breaker, its state's code (an unknown state counts as open)."""

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "circuit_breaker_state", f"Circuit breaker state: {_CODES_HELP}.", labels=["breaker"]
        )
        try:
            statuses = list(all_statuses())
        except Exception:  # a scrape must never fail because of the breakers
            logger.warning("circuit breaker states unavailable for this scrape", exc_info=True)
            statuses = []
        for status in statuses:
            family.add_metric([str(status.name)], STATE_CODES.get(str(status.state), STATE_CODES[STATE_OPEN]))
        yield family
