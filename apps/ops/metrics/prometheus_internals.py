"""Every use of prometheus_client's private members, for the version in ``WRITTEN_FOR``.

Private members used (a test pins the version; after an upgrade, check each against its source):

- ``prometheus_client.values.ValueClass`` and ``values.MutexValue``: where values are kept;
- ``prometheus_client.mmap_dict.MmapedDict`` (``read_all_values_from_file``, ``read_all_values``,
  ``read_value``, ``write_value``, ``close``) and its file layout: an 8-byte header whose first 4
  bytes are the bytes used; then entries of a 4-byte key length, the UTF-8 key (a JSON array of
  metric name, sample name, labels, help) padded to 8 bytes, a value and a timestamp (doubles);
- the metrics files' names (``<type>_<pid>.db``, ``gauge_<mode>_<pid>.db``) and the merge rules of
  ``MultiProcessCollector`` (``merged``), and ``prometheus_client.utils.floatToGoString``;
- a metric object's ``_name``, ``_type`` and ``_labelnames`` (read by the deploy/ validators' tests).
"""

from __future__ import annotations

import functools
import json
import os
from collections import defaultdict
from collections.abc import Iterable

from prometheus_client import Metric, values
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.utils import floatToGoString

WRITTEN_FOR = "prometheus_client==0.26.0"
_HEADER_BYTES = 8  # MmapedDict: a 4-byte "used" count and 4 bytes of padding


def keep_values_in_memory() -> None:
    """Record this process's metrics in memory, whatever ``PROMETHEUS_MULTIPROC_DIR`` says."""
    # prometheus_client chooses its value class once, from the environment, when first imported;
    # it has no public way to change that choice afterwards.
    values.ValueClass = values.MutexValue


def samples_of(filename: str) -> list[tuple[str, float, float]]:
    """(key, value, timestamp) of every sample in one metrics file; none for a file that is gone (a
    live gauge file of a worker that just died) or still empty (prometheus_client creates a worker's
    file, then sizes it), on which the reader would fail."""
    # Public readers merge whole directories into metric families; the fold and ``merged`` need raw
    # samples.
    try:
        if os.path.getsize(filename) < _HEADER_BYTES:
            return []
        return [
            (key, value, timestamp)
            for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(filename)
        ]
    except FileNotFoundError:
        return []


class SamplesFile:
    """A metrics file written in place, as a worker writes its own (the fold's archives)."""

    def __init__(self, filename: str) -> None:
        # prometheus_client has no public writer of its files: MmapedDict is what its values use.
        self._mmaped = MmapedDict(filename)
        self._keys = {key for key, _, _ in self._mmaped.read_all_values()}

    def get(self, key: str) -> tuple[float, float] | None:
        """(value, timestamp) of ``key``, None when absent (``read_value`` would create it)."""
        return self._mmaped.read_value(key) if key in self._keys else None

    def set(self, key: str, value: float, timestamp: float) -> None:
        self._mmaped.write_value(key, value, timestamp)
        self._keys.add(key)

    def close(self) -> None:
        self._mmaped.close()


LabelPairs = tuple[tuple[str, str], ...]


# Decoding a key is most of what prometheus_client's merge spends, on every key of every file at
# every scrape; the keys are the same from one scrape to the next. Bounded: one entry per series,
# and the series are bounded (labels.py).
@functools.cache
def _decoded(key: str) -> tuple[str, str, LabelPairs, str]:
    metric, sample, labels, documentation = json.loads(key)
    return metric, sample, tuple(sorted(labels.items())), documentation


def merged(filenames: Iterable[str]) -> list[Metric]:
    """The metric families of these metrics files, merged by the rules of prometheus_client's
    ``MultiProcessCollector``: counters and histograms add up; a gauge follows the mode in its file
    name (sum, min, max, mostrecent, or all: one series per process, labelled ``pid``); histogram
    buckets become cumulative. ``tests/ops/test_metrics_multiprocess.py`` holds the two equal."""
    # prometheus_client's merge does the same but decodes every key of every file at every scrape
    # (most of a scrape's cost); its file names and keys are its own, undocumented layout.
    families: dict[str, Metric] = {}
    values: dict[tuple[str, str, LabelPairs], float] = {}
    stamps: dict[tuple[str, str, LabelPairs], float] = {}
    for filename in filenames:
        kind, _, rest = os.path.basename(filename).partition("_")
        mode, _, pid = rest[: -len(".db")].rpartition("_") if kind == "gauge" else ("", "", "")
        mode = mode.removeprefix("live")
        for key, value, timestamp in samples_of(filename):
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


def declared_shape(metric: MetricWrapperBase) -> tuple[str, str, tuple[str, ...]]:
    """(name, type, label names) of a metric object, as declared."""
    # describe() gives name and type but no label names, and a labelled metric without children
    # collects no samples: the declaration is only in these attributes.
    return metric._name, metric._type, tuple(metric._labelnames)
