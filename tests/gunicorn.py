"""A real gunicorn master, started by tests with the project's ``deploy/gunicorn.conf.py``.

:class:`GunicornServer` owns the process's life: the command line, the port (``PORT``), the log files
(``gunicorn.out``, ``gunicorn.err`` in ``log_dir``), the wait until it serves, signals, and stopping it.
What a test suite needs beyond that (its environment, how it reads the logs, the signal that stops
it) stays with the suite: pass options, or subclass and override :meth:`GunicornServer.is_serving`.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal as signals
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.servers import PROJECT_DIR, ServerError, free_port, wait_until

GUNICORN = Path(sys.executable).parent / "gunicorn"
CONFIG = PROJECT_DIR / "deploy" / "gunicorn.conf.py"


class GunicornServer:
    """One gunicorn master and its workers on 127.0.0.1:``port``, logging into ``log_dir``."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        log_dir: Path,
        port: int | None = None,
        args: Sequence[str] = (),
        stop_signal: signals.Signals = signals.SIGTERM,
        stop_timeout: float = 45,
        popen_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.env = {**env, "PORT": str(self.port)}
        self.log_dir = log_dir
        self.args = list(args)
        self.stop_signal = stop_signal
        self.stop_timeout = stop_timeout
        # A process group of its own, which stop() empties: a worker the master did not outlive (killed
        # before its graceful timeout ran out) would otherwise stay behind, parented to init. Not a
        # session of its own, which the kernel would schedule as a separate CPU group, changing how
        # the load splits between the test's clients and the server.
        self.popen_kwargs = {"process_group": 0, **(popen_kwargs or {})}
        self.process: subprocess.Popen | None = None

    # --- Life cycle ---------------------------------------------------------------------------

    def start(self, *, timeout: float = 60, interval: float = 0.05) -> GunicornServer:
        """Start the master and return once :meth:`is_serving`; stopped again if it never does."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (
            open(self.log_dir / "gunicorn.out", "ab") as out,
            open(self.log_dir / "gunicorn.err", "ab") as err,
        ):
            self.process = subprocess.Popen(
                [str(GUNICORN), "-c", str(CONFIG), *self.args],
                cwd=PROJECT_DIR,
                env=self.env,
                stdout=out,
                stderr=err,
                **self.popen_kwargs,
            )

        def serving() -> bool:
            if self.process.poll() is not None:
                raise ServerError(f"gunicorn exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                return self.is_serving()
            except (OSError, http.client.HTTPException):
                return False

        try:
            wait_until(
                serving, timeout=timeout, interval=interval, message=f"gunicorn on {self.port} to serve"
            )
        except BaseException as exc:
            self.stop()
            if isinstance(exc, TimeoutError):
                raise ServerError(f"{exc}\n{self.log_tail()}") from exc
            raise
        return self

    def is_serving(self) -> bool:
        """Whether the server is up: ``GET /live`` answers 200 (override for another check)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            connection.request("GET", "/live")
            return connection.getresponse().status == 200
        finally:
            connection.close()

    @property
    def pid(self) -> int:
        """The master's pid."""
        assert self.process is not None, "not started"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: signals.Signals) -> float:
        """Send ``sig`` to the master; the monotonic time it was sent."""
        os.kill(self.pid, sig)
        return time.monotonic()

    def wait_exit(self, timeout: float) -> tuple[int, float]:
        """(exit status, monotonic time of the exit) of the master."""
        assert self.process is not None, "not started"
        self.process.wait(timeout=timeout)
        return self.process.returncode, time.monotonic()

    def stop(self) -> None:
        """``stop_signal``, then wait up to ``stop_timeout`` s (longer than the server's graceful
        timeout); SIGKILL if it is still running then, and SIGKILL to what is left of its group."""
        if self.process is None:
            return
        try:
            if self.running:
                self.process.send_signal(self.stop_signal)
                try:
                    self.process.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=10)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signals.SIGKILL)

    # --- Logs ---------------------------------------------------------------------------------

    def stdout_text(self) -> str:
        """Everything written to stdout so far (the access log and, with LOG_FORMAT=json, app records)."""
        return self._read("gunicorn.out")

    def stderr_text(self) -> str:
        """gunicorn's own log (stderr) so far."""
        return self._read("gunicorn.err")

    def log_tail(self, characters: int = 4000) -> str:
        """The end of both logs, for a failure message."""
        return "".join(
            f"--- {name} ---\n{self._read(name)[-characters:]}\n" for name in ("gunicorn.err", "gunicorn.out")
        )

    def _read(self, name: str) -> str:
        path = self.log_dir / name
        return path.read_text(errors="replace") if path.exists() else ""
