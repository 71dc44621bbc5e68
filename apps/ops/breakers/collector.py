"""``circuit_breaker_state{breaker}``, computed from the breakers' statuses when Prometheus scrapes
(docs/ARCHITECTURE.md, "circuit_breaker_state"); the ops app adds it to every scrape."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from . import all_statuses
from .status import STATE_CODES, STATE_OPEN

logger = logging.getLogger("apps.ops.breakers")

_CODES_HELP = ", ".join(f"{code} {state}" for state, code in STATE_CODES.items())


class CircuitBreakerStateCollector:
    """One sample per known breaker, its state's code (an unknown state counts as open)."""

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "circuit_breaker_state", f"Circuit breaker state: {_CODES_HELP}.", labels=["breaker"]
        )
        try:
            statuses = all_statuses()
        except Exception:  # a scrape must never fail because of the breakers
            logger.warning("circuit breaker states unavailable for this scrape", exc_info=True)
            statuses = []
        for status in statuses:
            family.add_metric([status.name], STATE_CODES.get(status.state, STATE_CODES[STATE_OPEN]))
        yield family
