"""Database backends: django-prometheus' query metrics plus ``database_connections_active{alias}``.

Selected by ``ENGINE`` (``apps.ops.metrics.db.postgresql`` / ``apps.ops.metrics.db.sqlite3``);
everything else is the django-prometheus wrapper of Django's own backend.

A connection is counted from the moment Django obtains it (``get_new_connection``: a checkout of
the psycopg pool when pooled, a new connection otherwise) to the moment it gives it back
(``_close``: returned to the pool, or closed). Each worker counts its own in a ``livesum`` gauge,
so a scrape shows the connections in use across the live workers of the server, and a dead
worker's count disappears with it. Pool statistics (``pool.get_stats()``) were not used: they live
in each worker's memory, so the worker answering a scrape could only report its own pool.
"""

from __future__ import annotations

from typing import Any

from apps.ops.metrics.definitions import DATABASE_CONNECTIONS_ACTIVE


class ConnectionsInUseMixin:
    """Keeps ``database_connections_active{alias}`` equal to the connections this process holds."""

    alias: str

    def get_new_connection(self, *args: Any, **kwargs: Any) -> Any:
        connection = super().get_new_connection(*args, **kwargs)
        DATABASE_CONNECTIONS_ACTIVE.labels(self.alias).inc()
        return connection

    def _close(self) -> Any:
        # Django calls _close() once per connection it holds; the connection is gone afterwards
        # even when closing raised, so the count goes down either way.
        try:
            return super()._close()
        finally:
            DATABASE_CONNECTIONS_ACTIVE.labels(self.alias).dec()
