"""The test session's own processes: the ports of its PostgreSQL and Redis, chosen before the
settings are read, and a check at the end that nothing the suite started is still running.

Loaded with ``-p tests.session`` (setup.cfg), so that it runs before pytest-django imports the
settings. Every process the suite starts inherits ``SESSION_VARIABLE`` from this process's
environment (:func:`tests.servers.subprocess_env` copies it), gunicorn's re-executed masters too;
whatever still carries it when the session ends was left behind: it is killed and the run fails.
"""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import pytest

from tests.servers import SESSION_VARIABLE, free_port, wait_until

PORT_VARIABLES = {"postgres": "DOTMAC_TEST_POSTGRES_PORT", "redis": "DOTMAC_TEST_REDIS_PORT"}
# Seconds a process stopped by the last teardowns may take to exit.
STOP_DEADLINE = float(os.environ.get("DOTMAC_TEST_STOP_DEADLINE", "30"))


@pytest.hookimpl(hookwrapper=True)  # around pytest-django's, which imports the settings
def pytest_load_initial_conftests(early_config, parser, args):
    os.environ[SESSION_VARIABLE] = uuid.uuid4().hex
    for variable in PORT_VARIABLES.values():
        os.environ[variable] = str(free_port())
    yield


def processes_left(marker: bytes) -> dict[int, str]:
    """Live processes other than this one whose environment holds ``marker``: pid → command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue  # exited, waiting for its parent to collect it
            found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except (OSError, IndexError):
            continue  # gone meanwhile, or not ours to read
    return found


def pytest_sessionfinish(session, exitstatus):
    marker = f"{SESSION_VARIABLE}={os.environ[SESSION_VARIABLE]}".encode()
    try:
        wait_until(lambda: not processes_left(marker), timeout=STOP_DEADLINE, interval=0.5)
        return
    except TimeoutError:
        left = processes_left(marker)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    reporter.section("processes left running", red=True)
    for pid, command in sorted(left.items()):
        reporter.write_line(f"{pid}: {command}")
    reporter.write_line(f"{len(left)} process(es) started by the suite outlived it (now killed)")
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
