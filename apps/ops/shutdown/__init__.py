"""Graceful shutdown of a server process, the drain (docs/ARCHITECTURE.md, "Graceful shutdown").
Nothing here imports Django at module level: the gunicorn master imports this package."""

from .cleanup import register_cleanup
from .middleware import DrainMiddleware
from .state import announce, is_draining, reset

__all__ = ["DrainMiddleware", "announce", "is_draining", "register_cleanup", "reset"]
