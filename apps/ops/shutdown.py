"""Drain state of this process (set when the server is shutting down) and the cleanup registry."""

from __future__ import annotations

import threading

_draining = threading.Event()


def is_draining() -> bool:
    """True once this process has been told to stop taking new work."""
    return _draining.is_set()
