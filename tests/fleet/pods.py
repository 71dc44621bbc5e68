"""Pods of the fleet: gunicorn servers of the project, configured as the manifests configure a pod.

A pod's environment is what the kubelet would give the container: the ConfigMap (``envFrom``),
then the ``env`` entries in order, ``$(VAR)`` expanded from what came before and ``secretKeyRef``
values taken from the harness' secrets. Service names resolve as cluster DNS would, to the
loopback address of the server playing that Service (``dotmac-postgres:5432`` → the test
PostgreSQL). Only what a pod on loopback cannot share with its neighbours differs, each for a
stated reason (:func:`pod_overrides`): its ports (a pod has an IP of its own; here it has ports of
its own), its writable directories (an emptyDir each), the image's static files and version.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from tests.fleet.manifests import Container
from tests.gunicorn import GunicornServer
from tests.servers import free_port, subprocess_env

_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def container_env(
    container: Container, *, secrets: Mapping[str, str], services: Mapping[str, str]
) -> dict[str, str]:
    """The container's environment as the kubelet builds it, with Service names resolved."""
    env = dict(container.config)
    for entry in container.env:
        name = entry["name"]
        if "value" in entry:
            env[name] = _REFERENCE.sub(
                lambda match: env.get(match.group(1), match.group(0)), str(entry["value"])
            )
        elif "secretKeyRef" in entry.get("valueFrom", {}):
            env[name] = secrets[entry["valueFrom"]["secretKeyRef"]["key"]]
        else:
            raise NotImplementedError(f"env entry {entry}: the harness knows value and secretKeyRef")
    for name, value in env.items():
        for service, address in services.items():
            value = value.replace(f"@{service}", f"@{address}").replace(f"//{service}", f"//{address}")
        env[name] = value
    return env


def pod_overrides(
    root: Path, *, http_port: int, probe_port: int | None, static_root: Path, version: str
) -> dict:
    """What one pod on loopback needs that the manifests leave to the pod's own network and volumes."""
    return {
        # A pod IP of its own is a port of its own here; production binds 0.0.0.0:PORT.
        "PORT": str(http_port),
        "GUNICORN_BIND": f"127.0.0.1:{http_port}",
        **({"PROBE_PORT": str(probe_port)} if probe_port else {}),
        # The emptyDir volumes (/tmp, /run/prometheus-multiproc) are per pod.
        "DATA_DIR": str(root / "tmp" / "dotmac-data"),
        "GUNICORN_RUNTIME_DIR": str(root / "tmp" / "gunicorn"),
        "PROMETHEUS_MULTIPROC_DIR": str(root / "prometheus-multiproc"),
        "HEALTH_DISK_PATHS": str(root / "tmp"),
        # Fixed in the image at build time.
        "STATIC_ROOT": str(static_root),
        "APP_VERSION": version,
    }


class Pod:
    """One pod: a gunicorn master started from the pod's environment, with the pod's ports."""

    def __init__(
        self,
        name: str,
        container: Container,
        *,
        env: Mapping[str, str],
        static_root: Path,
        version: str,
        grace_seconds: float,
    ) -> None:
        self.name = name
        self.container = container
        self.root = Path(tempfile.mkdtemp(prefix=f"dotmac-{name}-"))
        (self.root / "tmp").mkdir()
        # The pod's container ports, by name, on loopback.
        self.ports = {port_name: free_port() for port_name in container.ports}
        http_port = self.ports["http"]
        pod_env = {
            **subprocess_env(),
            **env,
            **pod_overrides(
                self.root,
                http_port=http_port,
                probe_port=self.ports.get(_port_name(container, container.config.get("PROBE_PORT"))),
                static_root=static_root,
                version=version,
            ),
        }
        self.env = pod_env
        self.grace_seconds = grace_seconds
        self.server = _PodServer(pod_env, log_dir=self.root / "logs", port=http_port)
        self.started_at = 0.0
        self.restarts = 0
        self.terminating = False

    @property
    def http_port(self) -> int:
        return self.ports["http"]

    def port(self, name_or_number: str | int) -> int:
        """The loopback port of a container port (by name or by its containerPort number)."""
        if isinstance(name_or_number, str):
            return self.ports[name_or_number]
        return self.ports[_port_name(self.container, name_or_number)]

    @property
    def running(self) -> bool:
        return self.server.running

    def start(self) -> Pod:
        """Start the container (returns at once: the startup probe says when it is up)."""
        self.server.start(timeout=30)
        self.started_at = time.monotonic()
        return self

    def run_pre_stop(self) -> None:
        """Run an exec preStop hook in the pod's environment, as the kubelet does before SIGTERM."""
        if self.container.pre_stop:
            subprocess.run(
                list(self.container.pre_stop), env=self.env, timeout=self.grace_seconds, check=False
            )

    def terminate(self) -> None:
        """preStop, SIGTERM, and SIGKILL when the grace period (counted from preStop) runs out."""
        began = time.monotonic()
        self.run_pre_stop()
        if not self.running:
            return
        self.server.signal(signal.SIGTERM)
        try:
            self.server.wait_exit(max(0.0, self.grace_seconds - (time.monotonic() - began)))
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL to the master; its workers notice and exit (the container's PID namespace would
        kill them with it)."""
        if self.running:
            self.server.signal(signal.SIGKILL)
            self.server.wait_exit(10)

    def crash(self) -> float:
        """``kill -9`` of the container: every process of it at once, as the kernel kills a PID
        namespace whose PID 1 dies (requests in flight are cut, nothing drains); when it happened."""
        killed_at = time.monotonic()
        os.killpg(self.server.pid, signal.SIGKILL)
        self.server.wait_exit(10)
        return killed_at

    def local_ports(self) -> set[int]:
        """Local ports of the TCP sockets the container's processes hold (its process group, /proc)."""
        inodes = set()
        for entry in Path("/proc").iterdir():
            try:
                if not entry.name.isdigit():
                    continue
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2]) != self.server.pid:
                    continue
                for fd in (entry / "fd").iterdir():
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
        ports = set()
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].split(":")[1], 16))
        return ports

    @property
    def version(self) -> str:
        return self.env["APP_VERSION"]

    def restart(self) -> None:
        """The kubelet restarting the container in place (same pod, same ports and volumes)."""
        self.terminate()
        self.start_again()

    def start_again(self) -> None:
        """Start the container again after it exited (a restart, counted as the kubelet counts it)."""
        self.restarts += 1
        self.server = _PodServer(self.env, log_dir=self.root / "logs", port=self.http_port)
        self.start()

    def destroy(self) -> None:
        try:
            self.kill()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self) -> str:
        return self.server.log_tail()


def _port_name(container: Container, number: str | int | None) -> str | None:
    if number in (None, ""):
        return None
    for name, value in container.ports.items():
        if value == int(number):
            return name
    raise LookupError(f"no container port {number}")


class _PodServer(GunicornServer):
    """Started like the kubelet starts a container: no waiting; the probes tell when it serves."""

    def is_serving(self) -> bool:
        return True
