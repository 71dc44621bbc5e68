"""Graceful shutdown of a server process, the drain: announced (``/ready`` 503, everything served),
stopping (new requests refused with 503, those in flight finished), exiting (cleanup tasks, one
summary line). Under gunicorn the master drives it (``master``); ``apps.ops.gunicorn_hooks`` wires
it. Nothing here imports Django at module level: the gunicorn master imports this package.
"""

from .cleanup import register_cleanup
from .middleware import DrainMiddleware
from .state import announce, is_draining, reset

__all__ = ["DrainMiddleware", "announce", "is_draining", "register_cleanup", "reset"]
