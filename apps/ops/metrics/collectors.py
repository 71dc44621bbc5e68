"""The registry a scrape reads: recorded metrics, plus values computed at scrape time.

Scrape-time collectors are added by the parts of ops that own the values (``add_scrape_collector``
in ``apps.ops.metrics``; the breakers' states, ``apps.ops.breakers.collector``), so this package
imports none of them.
"""

from __future__ import annotations

from django.conf import settings
from prometheus_client import REGISTRY, CollectorRegistry

from .multiprocess import ArchivingMultiProcessCollector

# Collectors whose values are computed when Prometheus scrapes (objects with a collect() method).
SCRAPE_COLLECTORS: list = []


def scrape_registry() -> CollectorRegistry:
    """Everything one scrape exposes: recorded metrics (of every worker) plus scrape-time values."""
    registry = CollectorRegistry()
    directory = settings.PROMETHEUS_MULTIPROC_DIR
    if directory:
        registry.register(ArchivingMultiProcessCollector(directory))
    else:
        registry.register(REGISTRY)  # one process: its own registry holds every recorded value
    for collector in SCRAPE_COLLECTORS:
        registry.register(collector)
    return registry
