"""The built-in checks of what the process depends on: shutdown, database, cache, migrations, breakers.

This module names every built-in check, the resource checks (disk, memory) of ``resources`` too.
Which checks run, how critical they are and their timeouts come from ``settings.HEALTH_CHECKS``.
"""

from __future__ import annotations

import uuid

import redis
from django.conf import settings
from django.core.cache import caches
from django.db import Error as DatabaseError
from django.db import connections
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader

from apps.ops.breakers import STATE_CLOSED, all_statuses
from apps.ops.cache import outage_of, ping_client
from apps.ops.shutdown import is_draining

from .base import CheckFailed, CheckWarning, HealthCheck, Observation, describe_error
from .resources import DiskCheck, MemoryCheck  # noqa: F401  (settings.HEALTH_CHECKS names them here)


class ShutdownCheck(HealthCheck):
    """Fails while the process drains, so the endpoints controller stops sending it traffic."""

    name = "shutdown"
    component_type = "system"
    cached = False
    blocking = False

    def run(self) -> Observation | None:
        if is_draining():
            raise CheckFailed("draining: this process is shutting down and takes no new traffic")
        return None


class DatabaseCheck(HealthCheck):
    """A trivial query on one database alias, bounded on the server by a statement timeout.

    A shared dependency: while it fails the pod stays in service, answering pages with a fast 503
    (``apps.ops.errors``), and serves again the moment the pool reconnects.
    """

    name = "database"
    component_type = "datastore"
    critical = False
    shared_dependency = True

    def __init__(self, *, alias: str, query: str = "SELECT 1") -> None:
        super().__init__(component_id=alias)
        self.alias = alias
        self.query = query

    @classmethod
    def build(cls, *, aliases: list[str] | None = None, query: str = "SELECT 1") -> list[HealthCheck]:
        return [cls(alias=alias, query=query) for alias in (aliases or list(settings.DATABASES))]

    def run(self) -> Observation | None:
        connection = connections[self.alias]
        try:
            with connection.cursor() as cursor:
                if connection.vendor == "postgresql":
                    # One round trip: a multi-statement simple query is one implicit transaction,
                    # so SET LOCAL bounds the query without changing the pooled session.
                    timeout = self.timeout_within(float(settings.HEALTH_CHECK_DEADLINE))
                    cursor.execute(
                        f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}; {self.query}"
                    )
                    cursor.nextset()
                else:
                    cursor.execute(self.query)
                cursor.fetchone()
        except DatabaseError as exc:
            raise CheckFailed(f"database {self.alias!r}, pages answer 503: {describe_error(exc)}")
        return None


class _OnAlias(HealthCheck):
    """A check of one alias (of ``CACHES`` or ``DATABASES``); the default one has no component id."""

    def __init__(self, *, alias: str = "default") -> None:
        super().__init__(component_id=alias if alias != "default" else None)
        self.alias = alias

    @classmethod
    def build(cls, *, aliases: list[str] | None = None) -> list[HealthCheck]:
        return [cls(alias=alias) for alias in (aliases or ["default"])]


class CacheCheck(_OnAlias):
    """A Redis PING (one attempt, the cache's socket timeouts) or a set/get on other cache backends.

    Redis is shared by every pod, and pages run without the cache while it is unreachable
    (``apps.ops.cache``): its failure is reported as ``warn`` (``shared_dependency``). While the
    cache already knows Redis is unreachable the check says so without waiting on it again.
    """

    name = "cache"
    component_type = "datastore"
    critical = False
    shared_dependency = True

    def run(self) -> Observation | None:
        cache = caches[self.alias]
        outage = outage_of(cache)
        if outage is None:
            key = f"health-check:{uuid.uuid4().hex}"
            cache.set(key, "ok", 10)
            value = cache.get(key)
            cache.delete(key)
            if value != "ok":
                raise CheckFailed("cache did not return the value it stored")
            return None
        if not outage.unreachable:
            try:
                ping_client(cache.client.get_client(write=True)).ping()
            except (redis.RedisError, OSError) as exc:
                outage.report(exc)
        if outage.unreachable:
            raise CheckFailed(
                f"redis at {outage.address} unreachable for {outage.seconds:.0f} s: pages run without "
                "the cache, circuit breakers on this process's local state",
                observation=Observation(round(outage.seconds, 1), "s unreachable"),
            )
        return None


class MigrationsCheck(_OnAlias):
    """Fails while migrations are unapplied: this code must not serve a schema it does not know.

    Once every migration is applied, that stays true for this code, so the answer is remembered
    for the life of the process and later runs cost no query (nor a thread: they cannot block).
    """

    name = "migrations"
    component_type = "datastore"

    _applied_aliases: set[str] = set()

    def __init__(self, *, alias: str = "default") -> None:
        super().__init__(alias=alias)
        self.blocking = alias not in self._applied_aliases

    @staticmethod
    def load_migration_files() -> None:
        """Import every migration module now (no query): the first run then costs a graph and one
        query (about 10 ms) instead of the imports too (about 70 ms). For a server process at boot."""
        MigrationLoader(None, ignore_no_migrations=True)

    @classmethod
    def forget_applied(cls) -> None:
        """Forget that migrations were found applied (tests; a process never needs it)."""
        cls._applied_aliases.clear()

    def run(self) -> Observation | None:
        if self.alias not in self._applied_aliases:
            try:
                executor = MigrationExecutor(connections[self.alias])
                plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
            except DatabaseError as exc:
                raise CheckFailed(f"cannot read the migration state: {describe_error(exc)}")
            if plan:
                names = [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]
                listed = ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
                raise CheckFailed(
                    f"{len(names)} unapplied migration(s): {listed}",
                    observation=Observation(len(names), "unapplied migrations"),
                )
            self._applied_aliases.add(self.alias)
            self.blocking = False
        return Observation(0, "unapplied migrations")


class CircuitBreakersCheck(HealthCheck):
    """Warns while any breaker is open or half-open. Never critical by default: an outage of one
    external API must not take every pod out of service."""

    name = "circuit_breakers"
    critical = False

    def run(self) -> Observation | None:
        not_closed = [status for status in all_statuses() if status.state != STATE_CLOSED]
        observation = Observation(len(not_closed), "breakers not closed")
        if not_closed:
            listed = ", ".join(f"{status.name} {status.state}" for status in not_closed)
            raise CheckWarning(f"circuit breakers not closed: {listed}", observation=observation)
        return observation
