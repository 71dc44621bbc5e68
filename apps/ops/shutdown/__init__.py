"""Graceful shutdown of a server process: the drain.

1. announcing: :func:`is_draining` is true (``/ready`` answers 503, so load balancers stop routing
   here) while every request is still served, and responses close their connection (``state``);
2. stopping: the process got SIGTERM; :class:`DrainMiddleware` refuses what still arrives with 503
   before any view runs, requests in flight complete (``middleware``);
3. exiting: the cleanup tasks run, each bounded in time (``cleanup``), and the process logs one
   summary line (``summary``).

Under gunicorn, ``master`` drives the phases from the master process (``apps.ops.gunicorn_hooks``
installs it) and ``gunicorn_internals`` holds every use of gunicorn's internals. Nothing here imports
Django at module level: the gunicorn master imports this package before it forks.
"""

from .cleanup import register_cleanup
from .middleware import DrainMiddleware
from .state import announce, is_draining, reset

__all__ = ["DrainMiddleware", "announce", "is_draining", "register_cleanup", "reset"]
