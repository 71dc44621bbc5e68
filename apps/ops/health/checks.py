"""The built-in checks: shutdown, database, cache, migrations, circuit breakers, disk, memory.

Which of them run, how critical they are and their timeouts come from ``settings.HEALTH_CHECKS``
(see ``apps.ops.health.config``). Each check raises ``CheckFailed``/``CheckWarning`` with a message
for operators; the runner keeps those messages away from anonymous callers.
"""

from __future__ import annotations

import os
import uuid
from functools import lru_cache
from pathlib import Path

from django.conf import settings

from .base import CheckFailed, CheckWarning, HealthCheck, Observation


def describe_error(exc: BaseException) -> str:
    """The exception's class and first message line, short: for operators, never for anonymous callers."""
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__
    return text[:200]


class ShutdownCheck(HealthCheck):
    """Fails while the process drains, so the endpoints controller stops sending it traffic."""

    name = "shutdown"
    component_type = "system"
    cached = False
    blocking = False

    def run(self) -> Observation | None:
        from apps.ops.shutdown import is_draining

        if is_draining():
            raise CheckFailed("draining: this process is shutting down and takes no new traffic")
        return None


class DatabaseCheck(HealthCheck):
    """A trivial query on one database alias, bounded on the server by a statement timeout.

    The database is shared by every pod: when it is unreachable every pod fails alike, and taking
    them all out of the Service changes nothing for users (the ingress would answer 503 instead of
    the pods) but delays recovery by a probe period and the endpoint propagation. So its failure is
    reported as ``warn`` and the pod stays in service, answering pages with a fast 503
    (``apps.ops.errors``); it serves again the moment the pool reconnects.
    """

    name = "database"
    component_type = "datastore"
    critical_by_default = False
    shared_dependency = True

    def __init__(self, *, alias: str, query: str = "SELECT 1") -> None:
        super().__init__(component_id=alias)
        self.alias = alias
        self.query = query

    @classmethod
    def build(cls, *, aliases: list[str] | None = None, query: str = "SELECT 1") -> list[HealthCheck]:
        return [cls(alias=alias, query=query) for alias in (aliases or list(settings.DATABASES))]

    def run(self) -> Observation | None:
        from django.db import Error, connections

        connection = connections[self.alias]
        try:
            with connection.cursor() as cursor:
                if connection.vendor == "postgresql":
                    # One round trip: a multi-statement simple query is one implicit transaction,
                    # so SET LOCAL bounds the query without changing the pooled session.
                    timeout_ms = max(
                        1, int(self.timeout_within(float(settings.HEALTH_CHECK_DEADLINE)) * 1000)
                    )
                    cursor.execute(f"SET LOCAL statement_timeout = {timeout_ms}; {self.query}")
                    cursor.nextset()
                else:
                    cursor.execute(self.query)
                cursor.fetchone()
        except Error as exc:
            raise CheckFailed(f"database {self.alias!r}, pages answer 503: {describe_error(exc)}")
        return None


class CacheCheck(HealthCheck):
    """A Redis PING (one attempt, the cache's socket timeouts) or a set/get on other cache backends.

    Redis is shared by every pod, and pages run without the cache while it is unreachable
    (``apps.ops.cache``): its failure is reported as ``warn`` (``shared_dependency``). While the
    cache already knows Redis is unreachable the check says so without waiting on it again.
    """

    name = "cache"
    component_type = "datastore"
    critical_by_default = False
    shared_dependency = True

    def __init__(self, *, alias: str = "default") -> None:
        super().__init__(component_id=alias if alias != "default" else None)
        self.alias = alias

    @classmethod
    def build(cls, *, aliases: list[str] | None = None) -> list[HealthCheck]:
        return [cls(alias=alias) for alias in (aliases or ["default"])]

    def run(self) -> Observation | None:
        from django.core.cache import caches

        from apps.ops.cache import outage_of, ping_client

        cache = caches[self.alias]
        outage = outage_of(cache)
        if outage is None:
            self._set_and_get(cache)
            return None
        if not outage.unreachable:
            import redis

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

    @staticmethod
    def _set_and_get(cache) -> None:
        key = f"health-check:{uuid.uuid4().hex}"
        cache.set(key, "ok", 10)
        value = cache.get(key)
        cache.delete(key)
        if value != "ok":
            raise CheckFailed("cache did not return the value it stored")


class MigrationsCheck(HealthCheck):
    """Fails while migrations are unapplied: this code must not serve a schema it does not know.

    Once every migration is applied, that stays true for this code, so the answer is remembered
    for the life of the process and later runs cost no query.
    """

    name = "migrations"
    component_type = "datastore"

    _applied_aliases: set[str] = set()

    def __init__(self, *, alias: str = "default") -> None:
        super().__init__(component_id=alias if alias != "default" else None)
        self.alias = alias

    @classmethod
    def build(cls, *, aliases: list[str] | None = None) -> list[HealthCheck]:
        return [cls(alias=alias) for alias in (aliases or ["default"])]

    @property
    def blocking(self) -> bool:  # type: ignore[override]
        # Found applied once, the answer needs no query: it runs in the caller's thread.
        return self.alias not in self._applied_aliases

    @staticmethod
    def load_migration_files() -> None:
        """Import every migration module now (no query): the first run then costs a graph and one
        query (about 10 ms) instead of the imports too (about 70 ms). For a server process at boot."""
        from django.db.migrations.loader import MigrationLoader

        MigrationLoader(None, ignore_no_migrations=True)

    @classmethod
    def forget_applied(cls) -> None:
        """Forget that migrations were found applied (tests; a process never needs it)."""
        cls._applied_aliases.clear()

    def run(self) -> Observation | None:
        if self.alias in self._applied_aliases:
            return Observation(0, "unapplied migrations")
        from django.db import Error, connections
        from django.db.migrations.executor import MigrationExecutor

        try:
            executor = MigrationExecutor(connections[self.alias])
            plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        except Error as exc:
            raise CheckFailed(f"cannot read the migration state: {describe_error(exc)}")
        if plan:
            names = [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]
            listed = ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
            raise CheckFailed(
                f"{len(names)} unapplied migration(s): {listed}",
                observation=Observation(len(names), "unapplied migrations"),
            )
        self._applied_aliases.add(self.alias)
        return Observation(0, "unapplied migrations")


class CircuitBreakersCheck(HealthCheck):
    """Warns while any breaker is open or half-open. Never critical by default: an outage of one
    external API must not take every pod out of service."""

    name = "circuit_breakers"
    critical_by_default = False

    def run(self) -> Observation | None:
        from apps.ops.breakers import STATE_CLOSED, all_statuses

        not_closed = [status for status in all_statuses() if status.state != STATE_CLOSED]
        observation = Observation(len(not_closed), "breakers not closed")
        if not_closed:
            listed = ", ".join(f"{status.name} {status.state}" for status in not_closed)
            raise CheckWarning(f"circuit breakers not closed: {listed}", observation=observation)
        return observation


# Filesystems whose statvfs() asks a server (or a user-space process) and can wait on it.
_NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "9p", "lustre", "gpfs", "afs", "davfs"}
)


_MOUNTINFO = "/proc/self/mountinfo"


@lru_cache(maxsize=64)
def on_network_filesystem(path: str, mountinfo: str = _MOUNTINFO) -> bool:
    """Whether ``path`` lies on a network or FUSE filesystem (True when that cannot be told).

    Read once per path and process: mounts under a running container do not change.
    """
    try:
        lines = Path(mountinfo).read_text().splitlines()
    except OSError:
        return True
    target = os.path.realpath(path)
    longest, filesystem = "", None
    for line in lines:
        mount_fields, _, fs_fields = line.partition(" - ")
        fields = mount_fields.split()
        if len(fields) < 5 or not fs_fields:
            continue
        mount_point = fields[4].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(longest):
            longest, filesystem = mount_point, fs_fields.split()[0]
    return filesystem is None or filesystem in _NETWORK_FILESYSTEMS or filesystem.startswith("fuse")


class DiskCheck(HealthCheck):
    """Free space of one writable directory; warns below ``warn_free_percent``.

    On a local filesystem it runs in the caller's thread (statvfs answers from the kernel); on a
    network or FUSE mount in a check thread, since the server may not answer.
    """

    name = "disk"
    component_type = "system"
    critical_by_default = False

    def __init__(self, *, path: str, warn_free_percent: float, mountinfo: str = _MOUNTINFO) -> None:
        super().__init__(component_id=str(path))
        self.path = str(path)
        self.warn_free_percent = float(warn_free_percent)
        self.blocking = on_network_filesystem(self.path, mountinfo)

    @classmethod
    def build(
        cls, *, paths: list[str] | None = None, warn_free_percent: float | None = None
    ) -> list[HealthCheck]:
        threshold = settings.HEALTH_DISK_WARN_FREE_PERCENT if warn_free_percent is None else warn_free_percent
        return [
            cls(path=path, warn_free_percent=threshold)
            for path in (paths if paths is not None else settings.HEALTH_DISK_PATHS)
        ]

    def run(self) -> Observation | None:
        try:
            stats = os.statvfs(self.path)
        except OSError as exc:
            raise CheckFailed(f"{self.path}: {describe_error(exc)}")
        if not os.access(self.path, os.W_OK):
            raise CheckFailed(f"{self.path} is not writable")
        free_percent = 100.0 * stats.f_bavail / stats.f_blocks if stats.f_blocks else 0.0
        observation = Observation(round(free_percent, 1), "% free")
        if free_percent < self.warn_free_percent:
            free_mib = stats.f_bavail * stats.f_frsize // 2**20
            raise CheckWarning(
                f"{self.path}: {free_percent:.1f}% free ({free_mib} MiB), below {self.warn_free_percent:g}%",
                observation=observation,
            )
        return observation


# cgroup v1 reports "no limit" as a number near 2**63.
_UNLIMITED_BYTES = 2**60


class MemoryCheck(HealthCheck):
    """Memory in use (working set, without reclaimable page cache) against the container's cgroup
    limit (v2 or v1), or against the host's memory when there is no limit; warns from ``warn_percent``.
    """

    name = "memory"
    component_type = "system"
    critical_by_default = False
    # /proc and the cgroup files are kernel memory: reading them never waits on a device.
    blocking = False

    def __init__(
        self, *, warn_percent: float, cgroup_root: str = "/sys/fs/cgroup", proc_root: str = "/proc"
    ) -> None:
        super().__init__()
        self.warn_percent = float(warn_percent)
        self.cgroup_root = Path(cgroup_root)
        self.proc_root = Path(proc_root)

    @classmethod
    def build(
        cls,
        *,
        warn_percent: float | None = None,
        cgroup_root: str = "/sys/fs/cgroup",
        proc_root: str = "/proc",
    ) -> list[HealthCheck]:
        threshold = settings.HEALTH_MEMORY_WARN_PERCENT if warn_percent is None else warn_percent
        return [cls(warn_percent=threshold, cgroup_root=cgroup_root, proc_root=proc_root)]

    def run(self) -> Observation | None:
        try:
            used, limit, source = self.memory_usage()
        except (OSError, ValueError) as exc:
            raise CheckFailed(f"cannot read memory usage: {describe_error(exc)}")
        percent = 100.0 * used / limit
        observation = Observation(round(percent, 1), "%")
        if percent >= self.warn_percent:
            raise CheckWarning(
                f"memory {percent:.0f}% of the {source} limit ({used // 2**20} MiB of {limit // 2**20} MiB)",
                observation=observation,
            )
        return observation

    def memory_usage(self) -> tuple[int, int, str]:
        """(bytes in use, limit in bytes, "cgroup v2" | "cgroup v1" | "host")."""
        host_total, host_available = self._meminfo()
        for reader in (self._cgroup_v2, self._cgroup_v1):
            found = reader()
            if found is not None:
                used, limit, source = found
                if limit < host_total:
                    return used, limit, source
        return host_total - host_available, host_total, "host"

    def _meminfo(self) -> tuple[int, int]:
        fields: dict[str, int] = {}
        for line in (self.proc_root / "meminfo").read_text().splitlines():
            name, _, rest = line.partition(":")
            if rest.strip():
                fields[name] = int(rest.split()[0]) * 1024
        return fields["MemTotal"], fields.get("MemAvailable", fields.get("MemFree", 0))

    def _own_cgroup_dirs(self, controller: str | None) -> list[Path]:
        """This process's cgroup directory (from /proc/self/cgroup), then the mount root."""
        base = self.cgroup_root if controller is None else self.cgroup_root / controller
        candidates = []
        try:
            lines = (self.proc_root / "self" / "cgroup").read_text().splitlines()
        except OSError:
            lines = []
        for line in lines:
            _hierarchy, controllers, path = line.split(":", 2)
            wanted = controllers == "" if controller is None else controller in controllers.split(",")
            if wanted and path.strip("/"):
                candidates.append(base / path.strip("/"))
        candidates.append(base)
        return candidates

    @staticmethod
    def _stat_field(directory: Path, field: str) -> int:
        try:
            for line in (directory / "memory.stat").read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == field:
                    return int(value)
        except OSError:
            pass
        return 0

    def _cgroup_v2(self) -> tuple[int, int, str] | None:
        for directory in self._own_cgroup_dirs(None):
            max_file = directory / "memory.max"
            if max_file.is_file():
                raw = max_file.read_text().strip()
                if raw == "max":
                    return None
                current = int((directory / "memory.current").read_text())
                used = max(0, current - self._stat_field(directory, "inactive_file"))
                return used, int(raw), "cgroup v2"
        return None

    def _cgroup_v1(self) -> tuple[int, int, str] | None:
        for directory in self._own_cgroup_dirs("memory"):
            limit_file = directory / "memory.limit_in_bytes"
            if limit_file.is_file():
                limit = int(limit_file.read_text())
                if limit >= _UNLIMITED_BYTES:
                    return None
                usage = int((directory / "memory.usage_in_bytes").read_text())
                used = max(0, usage - self._stat_field(directory, "total_inactive_file"))
                return used, limit, "cgroup v1"
        return None
