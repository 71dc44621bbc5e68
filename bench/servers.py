"""gunicorn servers for the benchmark: the test suite's :class:`GunicornServer` (``deploy/gunicorn.conf.py``)
plus what measuring needs: a name, worker pids and their memory, a readiness check on a chosen path.

PostgreSQL and Redis come from the test harness (``tests.servers``) as they are: real servers on free
loopback ports, in temporary directories, stopped by whoever started them.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from pathlib import Path

from tests.gunicorn import GunicornServer
from tests.servers import PROJECT_DIR, PostgresServer, RedisServer, ServerError, subprocess_env, wait_until

from .load import try_get
from .report import BenchError

# Threads per gthread worker: the config's default (GUNICORN_THREADS), which the benchmark keeps.
THREADS_PER_WORKER = 4

__all__ = [
    "PROJECT_DIR",
    "THREADS_PER_WORKER",
    "BenchServer",
    "PostgresServer",
    "RedisServer",
    "ServerError",
    "subprocess_env",
    "wait_until",
]


def _children(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (gunicorn's workers, for its master)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                # The command name may contain spaces; the parent pid follows the closing ")".
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise BenchError(f"no VmRSS for pid {pid}")


class BenchServer(GunicornServer):
    """One gunicorn master serving ``app`` (default: the config's Django app) on 127.0.0.1.

    Its access log (stdout, production's volume of lines) goes to /dev/null, as a log shipper would
    take it away; gunicorn's own log (stderr) is kept in ``run_dir/gunicorn-<name>/``.
    """

    def __init__(
        self,
        name: str,
        env: Mapping[str, str],
        *,
        run_dir: Path,
        app: str | None = None,
        workers: int = 2,
        ready_path: str = "/bench/trivial/",
    ) -> None:
        log_dir = run_dir / f"gunicorn-{name}"
        log_dir.mkdir(parents=True)
        (log_dir / "gunicorn.out").symlink_to(os.devnull)
        super().__init__(
            {**env, "WEB_CONCURRENCY": str(workers)},
            log_dir=log_dir,
            args=[app] if app else [],
            # Teardown: gunicorn's immediate stop (SIGTERM would drain for DRAIN_DELAY_SECONDS).
            stop_signal=signal.SIGQUIT,
        )
        self.env["GUNICORN_BIND"] = f"127.0.0.1:{self.port}"
        self.name = name
        self.workers = workers
        self.ready_path = ready_path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def is_serving(self) -> bool:
        """Every worker is up and the ready path answers 200 (as the ingress would ask: https)."""
        if len(self.worker_pids()) < self.workers:
            return False
        response = try_get(self.port, self.ready_path, headers={"X-Forwarded-Proto": "https"})
        return response is not None and response.status == 200

    def worker_pids(self) -> list[int]:
        return _children(self.pid) if self.running else []

    def worker_rss(self) -> list[int]:
        sizes = []
        for pid in self.worker_pids():
            try:
                sizes.append(rss_bytes(pid))
            except (OSError, BenchError):
                continue  # a worker recycling right now
        return sizes

    def log_text(self) -> str:
        """gunicorn's own log so far (stderr)."""
        return self.stderr_text()

    def terminate(self, timeout: float) -> tuple[float, int | None]:
        """SIGTERM to the master (what Kubernetes sends): seconds until it exited, and its status
        (None when it had not exited after ``timeout``; it is then stopped)."""
        sent = self.signal(signal.SIGTERM)
        try:
            code, exited = self.wait_exit(timeout)
        except Exception:
            self.stop()
            return timeout, None
        return exited - sent, code

    def quit(self) -> None:
        """Ask for an immediate stop without waiting (``stop`` waits)."""
        if self.running:
            self.signal(signal.SIGQUIT)
