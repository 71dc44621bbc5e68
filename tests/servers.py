"""Real PostgreSQL and Redis servers on loopback, started and stopped by tests.

Each server binds 127.0.0.1 on a free port, keeps its files in a temporary directory and is stopped
by whoever started it. When the tests run as root (CI), PostgreSQL runs as the ``postgres`` user,
because ``initdb`` refuses root. :func:`subprocess_env` is the environment project subprocesses
(gunicorn, ``manage.py``) start from.
"""

from __future__ import annotations

import glob
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
SESSION_VARIABLE = "DOTMAC_TEST_SESSION"  # marks every process a test session starts (tests/session.py)


class ServerError(RuntimeError):
    """A test server could not start; the message says why and how to fix it."""


def subprocess_env(**overrides: str) -> dict[str, str]:
    """This process's environment without settings of its own, plus ``overrides``, for a project
    subprocess (gunicorn, manage.py): the project's settings module and import path, this venv first."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_", "REDIS_", "PYTEST_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="dotmac.settings",
        PYTHONPATH=str(PROJECT_DIR),
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
    )
    env.update(overrides)
    return env


# Outgoing connections take their source ports from the kernel's ephemeral range: a port picked
# below it cannot be taken by one of them between the pick and the server's bind.
_EPHEMERAL_LOW = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
_handed_out: set[int] = set()
_ports_lock = threading.Lock()


def free_port() -> int:
    """A port of 127.0.0.1 nobody listens on, below the ephemeral range, never handed out twice by
    this process (two servers started in a row cannot be given the same port)."""
    with _ports_lock:
        while True:
            port = random.randrange(10_000, _EPHEMERAL_LOW)
            if port in _handed_out:
                continue
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port


def wait_until(predicate, *, timeout: float, interval: float = 0.05, message: str = "condition") -> None:
    """Poll ``predicate`` until it is truthy or ``timeout`` seconds pass (then raise)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _postgres_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if not candidates:
        raise ServerError(
            "PostgreSQL server binaries not found (apt-get install postgresql); `make test` installs them"
        )
    return Path(candidates[0]).parent


class PostgresServer:
    def __init__(self, port: int | None = None, user: str = "dotmac", password: str = "dotmac-test") -> None:
        self.bindir = _postgres_bindir()
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="dotmac-pg-"))
        self.datadir = self.root / "data"
        self.user = user
        self.password = password
        self._as_root = os.geteuid() == 0

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise ServerError(f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def start(self) -> PostgresServer:
        if self._as_root:
            shutil.chown(self.root, "postgres", "postgres")
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password)
        if self._as_root:
            shutil.chown(pwfile, "postgres", "postgres")
        self._run(
            "initdb", "-D", str(self.datadir), "-U", self.user, "--pwfile", str(pwfile),
            "-A", "scram-sha-256", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        conf = (
            f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
            f"unix_socket_directories = '{self.root}'\nfsync = off\nsynchronous_commit = off\n"
            "full_page_writes = off\nmax_connections = 200\n"
        )
        with open(self.datadir / "postgresql.conf", "a") as fh:
            fh.write(conf)
        self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.root / "log"), "-w", "-t", "30", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        if (self.datadir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop", check=False)

    def restart(self) -> None:
        self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.root / "log"), "-w", "-t", "30", "start")

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgres://{self.user}:{self.password}@127.0.0.1:{self.port}/{dbname}"


class RedisServer:
    def __init__(self, port: int | None = None, password: str = "") -> None:
        binary = shutil.which("redis-server")
        if not binary:
            raise ServerError(
                "redis-server not found (apt-get install redis-server); `make test` installs it"
            )
        self.binary = binary
        self.port = port or free_port()
        self.password = password
        self.root = Path(tempfile.mkdtemp(prefix="dotmac-redis-"))
        self.process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.root),
                "--save", "", "--appendonly", "no", "--protected-mode", "no",
                *(["--requirepass", self.password] if self.password else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_until(lambda: port_open(self.port), timeout=10, message=f"redis-server on {self.port}")
        except TimeoutError as exc:
            self.stop()
            raise ServerError(f"redis-server did not start: {exc}") from exc
        return self

    def freeze(self) -> None:
        """SIGSTOP: the kernel still accepts connections, the server never answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        """Start again on the same port (after ``stop``)."""
        self.start()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self) -> str:
        credentials = f":{self.password}@" if self.password else ""
        return f"redis://{credentials}127.0.0.1:{self.port}/0"
