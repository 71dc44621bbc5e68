"""Database backends (``ENGINE = "apps.ops.metrics.db.postgresql"`` or ``.sqlite3``): django-prometheus'
wrappers of Django's own, plus ``database_connections_active{alias}`` (docs/ARCHITECTURE.md, "Metrics")."""

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
