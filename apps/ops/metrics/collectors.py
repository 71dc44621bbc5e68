"""The registry a scrape reads: recorded metrics of every worker, plus values computed at scrape time
(added by the parts of ops that own them through ``add_scrape_collector``, so this imports none)."""

from __future__ import annotations

import fcntl
import functools
import glob
import json
import os
from collections import defaultdict
from collections.abc import Iterable

from django.conf import settings
from prometheus_client import REGISTRY, CollectorRegistry, Metric
from prometheus_client.utils import floatToGoString

from .multiprocess import locked
from .prometheus_internals import samples_of

# Objects with a collect() method, called when Prometheus scrapes.
SCRAPE_COLLECTORS: list = []

LabelPairs = tuple[tuple[str, str], ...]


# Decoding a key is most of what prometheus_client's merge spends, on every key of every file at
# every scrape; the keys are the same from one scrape to the next. Bounded: one entry per series,
# and the series are bounded (labels.py).
@functools.cache
def _decoded(key: str) -> tuple[str, str, LabelPairs, str]:
    metric, sample, labels, documentation = json.loads(key)
    return metric, sample, tuple(sorted(labels.items())), documentation


def merge(files: Iterable[tuple[str, list[tuple[str, float, float]]]]) -> list[Metric]:
    """Metric families from (file name, samples) pairs, merged by the rules of prometheus_client's
    ``MultiProcessCollector``: counters and histograms add up; a gauge follows the mode in its file
    name (sum, min, max, mostrecent, or all: one series per process, labelled ``pid``); histogram
    buckets become cumulative. ``tests/ops/test_metrics_multiprocess.py`` holds the two equal."""
    families: dict[str, Metric] = {}
    values: dict[tuple[str, str, LabelPairs], float] = {}
    stamps: dict[tuple[str, str, LabelPairs], float] = {}
    for filename, samples in files:
        kind, _, rest = os.path.basename(filename).partition("_")
        mode, _, pid = rest[: -len(".db")].rpartition("_") if kind == "gauge" else ("", "", "")
        mode = mode.removeprefix("live")
        for key, value, timestamp in samples:
            metric, sample, labels, documentation = _decoded(key)
            if metric not in families:
                families[metric] = Metric(metric, documentation, kind)
            if mode in ("all", ""):
                labels = (*labels, ("pid", pid)) if kind == "gauge" else labels
                slot = (metric, sample, labels)
                values[slot] = values.get(slot, 0.0) + value
                continue
            slot = (metric, sample, labels)
            if mode == "mostrecent":
                if timestamp > stamps.get(slot, 0.0):
                    values[slot], stamps[slot] = value, timestamp
            elif slot not in values or mode == "sum":
                values[slot] = values.get(slot, 0.0) + value
            else:
                values[slot] = (min if mode == "min" else max)(values[slot], value)
    buckets: dict[tuple[str, LabelPairs], list[tuple[float, float]]] = defaultdict(list)
    for (metric, sample, labels), value in values.items():
        if families[metric].type == "histogram" and sample.endswith("_bucket"):
            le = dict(labels)["le"]
            buckets[metric, tuple(pair for pair in labels if pair[0] != "le")].append((float(le), value))
        else:
            families[metric].add_sample(sample, dict(labels), value)
    for (metric, labels), bounds in buckets.items():
        cumulative = 0.0
        for bound, value in sorted(bounds):
            cumulative += value
            families[metric].add_sample(
                f"{metric}_bucket", {**dict(labels), "le": floatToGoString(bound)}, cumulative
            )
        families[metric].add_sample(f"{metric}_count", dict(labels), cumulative)
    return list(families.values())


class MultiProcessMerge:
    """Every worker file and archive of the multiprocess directory (``multiprocess.py``), merged,
    read while no fold is running."""

    def __init__(self, path: str) -> None:
        self.path = path

    def collect(self) -> list[Metric]:
        with locked(self.path, fcntl.LOCK_SH):
            names = glob.glob(os.path.join(self.path, "*.db"))
            return merge((name, samples_of(name)) for name in names)


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
