"""Checks of this container's own resources: free disk space and memory against its limit."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from django.conf import settings

from .base import CheckFailed, CheckWarning, HealthCheck, Observation, describe_error

# Filesystems whose statvfs() asks a server (or a user-space process) and can wait on it.
_NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "9p", "lustre", "gpfs", "afs", "davfs"}
)
_MOUNTINFO = "/proc/self/mountinfo"
# Per cgroup version: controller directory, limit, usage, reclaimable page cache (in memory.stat).
_CGROUP_FILES = (
    (None, "memory.max", "memory.current", "inactive_file", "cgroup v2"),
    ("memory", "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file", "cgroup v1"),
)


@lru_cache(maxsize=64)
def _on_network_filesystem(path: str, mountinfo: str = _MOUNTINFO) -> bool:
    """Whether ``path`` lies on a network or FUSE filesystem (True when that cannot be told). Cached:
    mounts under a running container do not change."""
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
    """Free space of one writable directory; warns below ``warn_free_percent``. Blocking only on a
    network or FUSE mount: elsewhere statvfs answers from the kernel."""

    name = "disk"
    component_type = "system"
    critical = False

    def __init__(self, *, path: str, warn_free_percent: float, mountinfo: str = _MOUNTINFO) -> None:
        super().__init__(component_id=str(path))
        self.path = str(path)
        self.warn_free_percent = float(warn_free_percent)
        self.blocking = _on_network_filesystem(self.path, mountinfo)

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


class MemoryCheck(HealthCheck):
    """Memory in use (working set, without reclaimable page cache) against the container's cgroup
    limit (v2 or v1), or the host's memory without one; warns from ``warn_percent``."""

    name = "memory"
    component_type = "system"
    critical = False
    # /proc and the cgroup files are kernel memory: reading them never waits on a device.
    blocking = False

    def __init__(
        self,
        *,
        warn_percent: float | None = None,
        cgroup_root: str = "/sys/fs/cgroup",
        proc_root: str = "/proc",
    ) -> None:
        super().__init__()
        self.warn_percent = float(
            settings.HEALTH_MEMORY_WARN_PERCENT if warn_percent is None else warn_percent
        )
        self.cgroup_root = Path(cgroup_root)
        self.proc_root = Path(proc_root)

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
        fields: dict[str, int] = {}
        for line in (self.proc_root / "meminfo").read_text().splitlines():
            name, _, rest = line.partition(":")
            if rest.strip():
                fields[name] = int(rest.split()[0]) * 1024
        host_total = fields["MemTotal"]
        for controller, limit_file, usage_file, reclaimable, source in _CGROUP_FILES:
            for directory in self._own_cgroup_dirs(controller):
                if (directory / limit_file).is_file():
                    limit = (directory / limit_file).read_text().strip()
                    if limit != "max" and int(limit) < host_total:  # else no limit (v1: a number near 2**63)
                        usage = int((directory / usage_file).read_text())
                        return max(0, usage - self._stat_field(directory, reclaimable)), int(limit), source
                    break
        return host_total - fields.get("MemAvailable", fields.get("MemFree", 0)), host_total, "host"

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
        return [*candidates, base]

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
