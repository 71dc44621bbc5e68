"""The registry a scrape reads: recorded metrics of every worker, plus values computed at scrape time
(added by the parts of ops that own them through ``add_scrape_collector``, so this imports none)."""

from __future__ import annotations

import fcntl
import glob
import os

from django.conf import settings
from prometheus_client import REGISTRY, CollectorRegistry, Metric

from .multiprocess import locked
from .prometheus_internals import merged

# Objects with a collect() method, called when Prometheus scrapes.
SCRAPE_COLLECTORS: list = []


class MultiProcessMerge:
    """Every worker file and archive of the multiprocess directory (``multiprocess.py``), merged,
    read while no fold is running."""

    def __init__(self, path: str) -> None:
        self.path = path

    def collect(self) -> list[Metric]:
        with locked(self.path, fcntl.LOCK_SH):
            names = glob.glob(os.path.join(self.path, "*.db"))
            return merged(names)


def scrape_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    directory = settings.PROMETHEUS_MULTIPROC_DIR
    if directory:
        registry.register(MultiProcessMerge(directory))
    else:
        registry.register(REGISTRY)
    for collector in SCRAPE_COLLECTORS:
        registry.register(collector)
    return registry
