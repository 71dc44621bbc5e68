"""gunicorn processes for the benchmark, started with ``deploy/gunicorn.conf.py`` and production settings.

PostgreSQL and Redis come from the test harness (``tests.servers``): the same real servers, on free
loopback ports, in temporary directories, stopped by whoever started them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers import PostgresServer, RedisServer, free_port, wait_until

from .load import try_get
from .report import BenchError

PROJECT_DIR = Path(__file__).resolve().parent.parent
GUNICORN_CONFIG = PROJECT_DIR / "deploy" / "gunicorn.conf.py"
# Threads per gthread worker: the config's default (GUNICORN_THREADS), which the benchmark keeps.
THREADS_PER_WORKER = 4

__all__ = ["THREADS_PER_WORKER", "Gunicorn", "PostgresServer", "RedisServer", "free_port", "wait_until"]


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


@dataclass
class Gunicorn:
    """One gunicorn master serving ``app`` (default: the config's Django app) on a free port.

    ``env`` is the complete environment; ``name`` labels its log file in ``run_dir``.
    """

    name: str
    env: dict[str, str]
    run_dir: Path
    app: str | None = None
    workers: int = 2
    ready_path: str = "/bench/trivial/"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.run_dir / f"gunicorn-{self.name}.log"

    def start(self) -> Gunicorn:
        env = dict(self.env)
        env.update(
            PORT=str(self.port),
            GUNICORN_BIND=f"127.0.0.1:{self.port}",
            WEB_CONCURRENCY=str(self.workers),
        )
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        command = [gunicorn, "-c", str(GUNICORN_CONFIG), *([self.app] if self.app else [])]
        # The access log (stdout) is production's volume of lines: discarded, like a log shipper
        # would take it away. Server and application errors (stderr) are kept for diagnosis.
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=PROJECT_DIR,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        return self

    def wait_ready(self, timeout: float = 60.0) -> Gunicorn:
        """Until every worker is up and the ready path answers 200."""

        def ready() -> bool:
            if self.process is None or self.process.poll() is not None:
                raise BenchError(f"gunicorn {self.name} exited at start; see {self.log_path}")
            if len(self.worker_pids()) < self.workers:
                return False
            response = try_get(self.port, self.ready_path, headers={"X-Forwarded-Proto": "https"})
            return response is not None and response.status == 200

        try:
            wait_until(ready, timeout=timeout, interval=0.1, message=f"gunicorn {self.name} to serve")
        except TimeoutError as exc:
            raise BenchError(f"{exc}; see {self.log_path}") from exc
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def worker_pids(self) -> list[int]:
        return _children(self.pid) if self.process else []

    def worker_rss(self) -> list[int]:
        sizes = []
        for pid in self.worker_pids():
            try:
                sizes.append(rss_bytes(pid))
            except (OSError, BenchError):
                continue  # a worker recycling right now
        return sizes

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self, timeout: float) -> tuple[float, int | None]:
        """SIGTERM to the master (what Kubernetes sends); seconds until it exited, and its exit code."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return time.monotonic() - started, None
        return time.monotonic() - started, code

    def quit(self) -> None:
        """Ask for an immediate stop (SIGQUIT) without waiting; :meth:`stop` waits."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)

    def stop(self) -> None:
        """Stop at once (SIGQUIT: gunicorn's immediate shutdown), SIGKILL the group if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        self.quit()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
