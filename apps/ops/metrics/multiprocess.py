"""Upkeep of prometheus_client's multiprocess directory under gunicorn, and the collector reading it.

Imports no Django, and no prometheus_client at module level: the gunicorn master may import this
module from its config file, and prometheus_client picks its multiprocess value class from
``PROMETHEUS_MULTIPROC_DIR`` the first time it is imported; workers inherit that choice by fork.

prometheus_client keeps one ``counter_<pid>.db``/``histogram_<pid>.db`` file per process that ever
ran and reads all of them at every scrape, so with worker recycling (``max_requests``) the directory
and the scrape time grow without bound. Here the master folds a dead worker's files into one archive
per file type, so the directory holds the files of live workers plus a fixed number of archives:

- counters, histograms, summaries: the dead worker's samples are *added* to ``<type>_archive.db``
  (the archive holds raw per-bucket counts, exactly like a worker file, so sums stay exact);
- gauges ``min``/``max``/``sum``/``mostrecent``: folded by their own rule into
  ``gauge_<mode>_archive.db`` (the collector drops the ``pid`` label for these modes anyway);
- gauges ``live*``: removed (``mark_process_dead``), the value died with the worker;
- gauges ``all``: removed as well; a per-pid value of a process that no longer exists describes
  nothing, and keeping one file per dead pid is exactly the growth this module exists to stop.

A fold updates the archive in place (the master keeps the archives open and touches only the dead
worker's keys, so a fold costs what that worker recorded, not what the server ever recorded) and
deletes the worker's file, all under an exclusive ``flock`` on ``.fold.lock``.
:class:`ArchivingMultiProcessCollector` reads the directory under a shared lock, so a scrape sees
either the state before a fold or the state after it, never the dead worker's samples twice (file
and archive) or not at all.
"""

from __future__ import annotations

import fcntl
import glob
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

ARCHIVE_ID = "archive"
LOCK_FILE_NAME = ".fold.lock"
# Gauge modes whose value survives its process, and how two values of one series combine.
_GAUGE_FOLD_RULES = {
    "min": min,
    "max": max,
    "sum": lambda archived, dead: archived + dead,
}
_SUMMED_TYPES = ("counter", "histogram", "summary")


@contextmanager
def _locked(path: str, operation: int) -> Iterator[None]:
    """Hold ``flock(operation)`` on the directory's lock file; released even if the holder dies."""
    fd = os.open(os.path.join(path, LOCK_FILE_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, operation)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def prepare_directory(path: str) -> None:
    """Create ``path`` and empty it (call once in the master, before any worker starts).

    The directory belongs to the metrics alone: every file in it (worker files, archives, the
    admitted tenant labels) describes a previous run of the server.
    """
    os.makedirs(path, exist_ok=True)
    for filename in [name for name in _open_archives if os.path.dirname(name) == os.path.abspath(path)]:
        _open_archives.pop(filename).close()
    for entry in os.scandir(path):
        if entry.is_file(follow_symlinks=False) or entry.is_symlink():
            os.remove(entry.path)
    # Create the lock file now so that readers never race its creation.
    os.close(os.open(os.path.join(path, LOCK_FILE_NAME), os.O_RDWR | os.O_CREAT, 0o644))


class _Archive:
    """One archive file, kept open by the master: a fold updates only the dead worker's keys in
    place instead of rewriting the whole archive (which holds every series ever recorded)."""

    def __init__(self, filename: str) -> None:
        from prometheus_client.mmap_dict import MmapedDict

        self.mmaped = MmapedDict(filename)
        self.keys = {key for key, _, _ in self.mmaped.read_all_values()}

    def fold(self, dead_file: str, mode: str) -> None:
        """Combine every sample of ``dead_file`` into this archive, by the rule of its type/mode."""
        from prometheus_client.mmap_dict import MmapedDict

        for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(dead_file):
            if key not in self.keys:
                self.mmaped.write_value(key, value, timestamp)
                self.keys.add(key)
                continue
            old_value, old_timestamp = self.mmaped.read_value(key)
            if mode == "mostrecent":
                if timestamp > old_timestamp:
                    self.mmaped.write_value(key, value, timestamp)
            elif mode in _GAUGE_FOLD_RULES:
                combined = _GAUGE_FOLD_RULES[mode](old_value, value)
                self.mmaped.write_value(key, combined, max(old_timestamp, timestamp))
            else:  # counters, histogram buckets and sums, summary counts and sums: add
                self.mmaped.write_value(key, old_value + value, 0.0)

    def close(self) -> None:
        self.mmaped.close()


_open_archives: dict[str, _Archive] = {}  # by absolute file name; used by the master only


def _archive(filename: str) -> _Archive:
    archive = _open_archives.get(filename)
    if archive is not None and not os.path.exists(filename):  # the directory was wiped meanwhile
        archive.close()
        archive = None
    if archive is None:
        archive = _open_archives[filename] = _Archive(filename)
    return archive


def _dead_files(path: str, pid: int) -> Iterable[tuple[str, str]]:
    """(file prefix, file name) of every metrics file written by ``pid``."""
    for filename in glob.glob(os.path.join(path, f"*_{pid}.db")):
        prefix = os.path.basename(filename)[: -len(f"_{pid}.db")]
        yield prefix, filename


def worker_exited(path: str, pid: int) -> None:
    """Account for a dead worker: drop its live gauges and fold everything else into the archives.

    Called by the gunicorn master in ``child_exit``. Exact: every increment of the dead worker is
    counted once, in the archive, and its files are gone afterwards.
    """
    from prometheus_client.multiprocess import mark_process_dead

    if not path or not os.path.isdir(path):
        return
    with _locked(path, fcntl.LOCK_EX):
        mark_process_dead(pid, path)
        for prefix, filename in _dead_files(path, pid):
            kind, _, mode = prefix.partition("_")
            if kind in _SUMMED_TYPES or (
                kind == "gauge" and (mode in _GAUGE_FOLD_RULES or mode == "mostrecent")
            ):
                _archive(os.path.join(os.path.abspath(path), f"{prefix}_{ARCHIVE_ID}.db")).fold(
                    filename, mode
                )
            os.remove(filename)


def file_count(path: str) -> int:
    """Number of metrics files in ``path`` (what a scrape reads)."""
    return len(glob.glob(os.path.join(path, "*.db")))


def _has_samples_header(filename: str) -> bool:
    """False for a file a starting worker has created but not sized yet (it holds no samples).

    prometheus_client creates a worker's file empty and then extends it; a scrape that reads it in
    between would fail on the empty file.
    """
    try:
        return os.path.getsize(filename) >= 8
    except FileNotFoundError:  # a live gauge file of a worker that just died
        return False


class ArchivingMultiProcessCollector:
    """prometheus_client's multiprocess merge, reading the directory while no fold is running."""

    def __init__(self, path: str) -> None:
        self.path = path

    def collect(self) -> list:
        from prometheus_client.multiprocess import MultiProcessCollector

        with _locked(self.path, fcntl.LOCK_SH):
            files = [name for name in glob.glob(os.path.join(self.path, "*.db")) if _has_samples_header(name)]
            # Merge while holding the lock: merge() reads every file.
            return list(MultiProcessCollector.merge(files, accumulate=True))


def multiprocess_registry(path: str) -> CollectorRegistry:
    """A registry exposing everything every worker (live or dead) of this server recorded."""
    from prometheus_client.registry import CollectorRegistry

    registry = CollectorRegistry()
    registry.register(ArchivingMultiProcessCollector(path))
    return registry
