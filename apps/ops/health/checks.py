"""The built-in checks, named here for ``settings.HEALTH_CHECKS`` (the resource checks too); what each
does and why: docs/ARCHITECTURE.md, "Probes"."""

from __future__ import annotations

import uuid

import redis
from django.conf import settings
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.cache import caches
from django.db import Error as DatabaseError
from django.db import connections
from django.db.migrations.executor import MigrationExecutor

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


class StaticFilesCheck(HealthCheck):
    """Fails while a manifest storage (production) has no collected files loaded: every page that
    links a static file would answer 500."""

    name = "static_files"
    component_type = "system"
    blocking = False

    def run(self) -> Observation | None:
        manifest = getattr(staticfiles_storage, "manifest_name", None)
        if manifest and not staticfiles_storage.hashed_files:
            raise CheckFailed(
                f"static files are not collected: run `manage.py collectstatic` (no {manifest} in "
                f"STATIC_ROOT {settings.STATIC_ROOT}), then restart the server"
            )
        return None


class DatabaseCheck(HealthCheck):
    """A trivial query on one database alias, bounded on the server by a statement timeout."""

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


class _OnAlias(HealthCheck):
    """A check of one alias (of ``CACHES`` or ``DATABASES``); the default one has no component id."""

    def __init__(self, *, alias: str = "default") -> None:
        super().__init__(component_id=alias if alias != "default" else None)
        self.alias = alias

    @classmethod
    def build(cls, *, aliases: list[str] | None = None) -> list[HealthCheck]:
        return [cls(alias=alias) for alias in (aliases or ["default"])]


class CacheCheck(_OnAlias):
    """A Redis PING (one attempt, the cache's socket timeouts), or at once "unreachable" while the cache
    already knows; a set/get on other cache backends."""

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


class MigrationsCheck(_OnAlias):
    """Fails while migrations are unapplied: this code must not serve a schema it does not know."""

    name = "migrations"
    component_type = "datastore"

    # Once applied, they stay so for this code: remembered for the life of the process, later runs
    # cost no query (nor a thread: they cannot block).
    applied_aliases: set[str] = set()

    def __init__(self, *, alias: str = "default") -> None:
        super().__init__(alias=alias)
        self.blocking = alias not in self.applied_aliases

    def run(self) -> Observation | None:
        if self.alias not in self.applied_aliases:
            try:
                loader = MigrationExecutor(connections[self.alias]).loader
            except DatabaseError as exc:
                raise CheckFailed(f"cannot read the migration state: {describe_error(exc)}")
            # Every migration of the graph, not a plan to the leaves: a plan skips an unapplied
            # migration whose successor is recorded as applied.
            graph, applied = loader.graph, loader.applied_migrations
            ordered = dict.fromkeys(key for leaf in graph.leaf_nodes() for key in graph.forwards_plan(leaf))
            unapplied = [key for key in ordered if key not in applied]
            if unapplied:
                names = [f"{app_label}.{name}" for app_label, name in unapplied]
                listed = ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
                raise CheckFailed(
                    f"{len(names)} unapplied migration(s): {listed}",
                    observation=Observation(len(names), "unapplied migrations"),
                )
            self.applied_aliases.add(self.alias)
            self.blocking = False
        return Observation(0, "unapplied migrations")


class CircuitBreakersCheck(HealthCheck):
    """Warns while any breaker is open or half-open; not critical: one external API's outage must not
    take every pod out of service."""

    name = "circuit_breakers"
    critical = False

    def run(self) -> Observation | None:
        not_closed = [status for status in all_statuses() if status.state != STATE_CLOSED]
        observation = Observation(len(not_closed), "breakers not closed")
        if not_closed:
            listed = ", ".join(f"{status.name} {status.state}" for status in not_closed)
            raise CheckWarning(f"circuit breakers not closed: {listed}", observation=observation)
        return observation
