from django_prometheus.db.backends.sqlite3 import base

from apps.ops.metrics.db import ConnectionsInUseMixin


class DatabaseWrapper(ConnectionsInUseMixin, base.DatabaseWrapper):
    pass
