"""Every use of prometheus_client's private members, for the version in ``WRITTEN_FOR``.

Private members used (a test pins the version; after an upgrade, check each against its source):

- ``prometheus_client.values.ValueClass`` and ``values.MutexValue``: where values are kept;
- ``prometheus_client.mmap_dict.MmapedDict`` (``read_all_values_from_file``, ``read_all_values``,
  ``read_value``, ``write_value``, ``close``) and its file layout: an 8-byte header whose first 4
  bytes are the bytes used; then entries of a 4-byte key length, the UTF-8 key (a JSON array of
  metric name, sample name, labels, help) padded to 8 bytes, a value and a timestamp (doubles);
- a metric object's ``_name``, ``_type`` and ``_labelnames`` (read by the deploy/ validators' tests).
"""

from __future__ import annotations

import os

from prometheus_client import values
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.mmap_dict import MmapedDict

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
    # Public readers merge whole directories into metric families; the fold and the scrape's merge
    # (collectors.py) need raw samples.
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


def declared_shape(metric: MetricWrapperBase) -> tuple[str, str, tuple[str, ...]]:
    """(name, type, label names) of a metric object, as declared."""
    # describe() gives name and type but no label names, and a labelled metric without children
    # collects no samples: the declaration is only in these attributes.
    return metric._name, metric._type, tuple(metric._labelnames)
