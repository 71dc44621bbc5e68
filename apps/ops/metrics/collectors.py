"""The registry a scrape reads: recorded metrics of every worker, plus values computed at scrape time
(added by the parts of ops that own them through ``add_scrape_collector``, so this imports none)."""

from __future__ import annotations

import fcntl
import glob
import os

from django.conf import settings
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from .multiprocess import locked
from .prometheus_internals import has_samples

# Objects with a collect() method, called when Prometheus scrapes.
SCRAPE_COLLECTORS: list = []


class ArchivingMultiProcessCollector:
    """prometheus_client's multiprocess merge of the directory (worker files and the archives of
    dead workers, ``multiprocess.py``), read while no fold is running."""

    def __init__(self, path: str) -> None:
        self.path = path

    def collect(self) -> list:
        with locked(self.path, fcntl.LOCK_SH):
            files = [name for name in glob.glob(os.path.join(self.path, "*.db")) if has_samples(name)]
            return list(MultiProcessCollector.merge(files, accumulate=True))  # reads every file


def scrape_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    directory = settings.PROMETHEUS_MULTIPROC_DIR
    registry.register(ArchivingMultiProcessCollector(directory) if directory else REGISTRY)
    for collector in SCRAPE_COLLECTORS:
        registry.register(collector)
    return registry
