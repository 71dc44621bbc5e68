from django_prometheus.db.backends.postgresql import base

from apps.ops.metrics.db import ConnectionsInUseMixin


class DatabaseWrapper(ConnectionsInUseMixin, base.DatabaseWrapper):
    pass
