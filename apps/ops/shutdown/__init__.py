"""Graceful shutdown of a server process, the drain (docs/ARCHITECTURE.md, "Graceful shutdown").
Nothing here imports Django at module level: the gunicorn master imports this package."""

from .cleanup import register_cleanup
from .middleware import DrainMiddleware
from .state import is_draining

__all__ = ["DrainMiddleware", "is_draining", "register_cleanup"]
