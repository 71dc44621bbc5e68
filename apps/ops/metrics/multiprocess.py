"""Upkeep of prometheus_client's multiprocess directory by the gunicorn master: a dead worker's files
are folded into one archive per file type, so the directory (and the scrape time) stays bounded
however often workers recycle (docs/ARCHITECTURE.md, "Under gunicorn").

The master imports this module with its config file, without Django and possibly before the file
sets ``PROMETHEUS_MULTIPROC_DIR``. So it imports neither Django nor, at module level,
prometheus_client: prometheus_client chooses its multiprocess value class from that variable the
first time it is imported, and workers inherit the choice by fork.
"""

from __future__ import annotations

import fcntl
import glob
import operator
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .prometheus_internals import SamplesFile

ARCHIVE_ID = "archive"
LOCK_FILE_NAME = ".fold.lock"
# Gauge modes whose value survives its process, and how two values of one series combine.
_GAUGE_FOLD_RULES = {"min": min, "max": max, "sum": operator.add}
_SUMMED_TYPES = ("counter", "histogram", "summary")

_open_archives: dict[str, SamplesFile] = {}  # by absolute file name; the master's alone


@contextmanager
def locked(path: str, operation: int) -> Iterator[None]:
    """Hold ``flock(operation)`` on the directory's lock file, released even if the holder dies. Folds
    hold it exclusively, scrapes shared: a scrape sees a dead worker's samples once, file or archive."""
    fd = os.open(os.path.join(path, LOCK_FILE_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, operation)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def prepare_directory(path: str) -> None:
    """Create ``path`` and empty it (once in the master, before any worker starts): every file in it
    (worker files, archives, the admitted tenant labels) describes a previous run of the server."""
    os.makedirs(path, exist_ok=True)
    for filename in [name for name in _open_archives if os.path.dirname(name) == os.path.abspath(path)]:
        _open_archives.pop(filename).close()
    for entry in os.scandir(path):
        if entry.is_file(follow_symlinks=False) or entry.is_symlink():
            os.remove(entry.path)
    # Create the lock file now so that readers never race its creation.
    os.close(os.open(os.path.join(path, LOCK_FILE_NAME), os.O_RDWR | os.O_CREAT, 0o644))


def worker_exited(path: str, pid: int) -> None:
    """Account for a dead worker (``child_exit``): drop its live gauges, fold the rest into the
    archives. Exact: every increment of the dead worker is counted once, in an archive."""
    # Imported here, not at the top, for the gunicorn master: see the module docstring.
    from prometheus_client.multiprocess import mark_process_dead

    from .prometheus_internals import SamplesFile, samples_of

    if not os.path.isdir(path):
        return
    with locked(path, fcntl.LOCK_EX):
        mark_process_dead(pid, path)
        for filename in glob.glob(os.path.join(path, f"*_{pid}.db")):
            prefix = os.path.basename(filename)[: -len(f"_{pid}.db")]
            kind, _, mode = prefix.partition("_")
            if kind in _SUMMED_TYPES or mode in _GAUGE_FOLD_RULES or mode == "mostrecent":
                archive_name = os.path.join(os.path.abspath(path), f"{prefix}_{ARCHIVE_ID}.db")
                archive = _open_archives.pop(archive_name, None)
                if archive is not None and not os.path.exists(archive_name):  # wiped meanwhile
                    archive.close()
                    archive = None
                archive = _open_archives[archive_name] = archive or SamplesFile(archive_name)
                for key, value, timestamp in samples_of(filename):
                    _fold(archive, key, value, timestamp, mode)
            os.remove(filename)


def _fold(archive: SamplesFile, key: str, value: float, timestamp: float, mode: str) -> None:
    archived = archive.get(key)
    if archived is None or (mode == "mostrecent" and timestamp > archived[1]):
        archive.set(key, value, timestamp)
    elif mode in _GAUGE_FOLD_RULES:
        archive.set(key, _GAUGE_FOLD_RULES[mode](archived[0], value), max(archived[1], timestamp))
    elif mode != "mostrecent":  # counters, histogram buckets and sums, summary counts and sums: add
        archive.set(key, archived[0] + value, 0.0)
