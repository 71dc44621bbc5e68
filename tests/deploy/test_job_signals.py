"""The migration Job and the activation CronJob end on SIGTERM, as PID 1 of their container.

The kernel gives the first process of a PID namespace no default action for a signal it has no
handler for, and a signal from outside the namespace (the container runtime's, on the kubelet's
behalf) reaches it only if it has one: a plain ``python manage.py ...`` as PID 1 ignores SIGTERM and
is SIGKILLed when its grace period ends. The tests run each command exactly as the rendered manifest
states it, as PID 1 of a new PID namespace (``unshare``), signal it from outside, and watch it end.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.servers import subprocess_env, wait_until

from .conftest import REPO, config_map_data, find

# A process that ignored SIGTERM is still running after this long; one that handles it has ended.
SIGTERM_ANSWER_SECONDS = 10
STILL_RUNNING_SECONDS = 3


def unshare() -> str:
    binary = shutil.which("unshare")
    if not binary:
        pytest.fail("unshare is not installed: apt-get install util-linux")
    return binary


class PidOne:
    """``command`` as PID 1 of a new PID (and user) namespace, started in the repository like the image's
    WORKDIR; ``host_pid`` is that process as seen from here, where the container runtime signals it."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._log_file = log.open("w")
        self.wrapper = subprocess.Popen(
            [unshare(), "--user", "--map-root-user", "--pid", "--fork", "--kill-child", *command],
            cwd=REPO, env=env, stdout=self._log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.host_pid = 0
        wait_until(self._find_child, timeout=10, message="the namespace's first process")

    def _find_child(self) -> bool:
        children = Path(f"/proc/{self.wrapper.pid}/task/{self.wrapper.pid}/children")
        found = children.read_text().split() if children.exists() else []
        if found:
            self.host_pid = int(found[0])
        return bool(found) or self.wrapper.poll() is not None

    def pid_in_namespace(self) -> int:
        for line in Path(f"/proc/{self.host_pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return int(line.split()[-1])  # the innermost namespace's number comes last
        raise AssertionError("no NSpid line")

    def exit_code(self, timeout: float) -> int | None:
        """The command's exit code (128 + n when a signal n ended it), or None if still running."""
        try:
            return self.wrapper.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        if self.wrapper.poll() is None:
            self.wrapper.kill()  # --kill-child: the namespace's processes die with it
            self.wrapper.wait(timeout=10)
        self._log_file.close()


@pytest.fixture
def pid_one(tmp_path):
    started: list[PidOne] = []

    def start(command: list[str], env: dict[str, str]) -> PidOne:
        process = PidOne(command, env, tmp_path / f"output-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def container_command(rendered, kind: str, name: str) -> list[str]:
    workload = find(rendered, kind, name)
    spec = workload["spec"]["jobTemplate"]["spec"] if kind == "CronJob" else workload["spec"]
    (container,) = spec["template"]["spec"]["containers"]
    return container["command"]


@pytest.fixture
def database(postgres_server):
    """A database of its own on the session's PostgreSQL, dropped afterwards."""
    name = f"sigterm_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.url("postgres"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield postgres_server.url(name)
    with psycopg.connect(postgres_server.url("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def job_env(rendered, database, redis_server, tmp_path) -> dict[str, str]:
    """The pods' environment: the ConfigMap, the secrets, the pod volumes under a temporary directory."""
    config = config_map_data(rendered)
    return subprocess_env(
        **{
            **config,
            # The pod's volumes, moved under this test's temporary directory.
            "DATA_DIR": str(tmp_path / "data"),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "multiproc"),
            "GUNICORN_RUNTIME_DIR": str(tmp_path / "runtime"),
        },
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DATABASE_URL=database,
        REDIS_URL=redis_server.url,
        PROVISIONING_API_TOKEN="token",
    )


def waits_on_a_lock(blocker: psycopg.Connection, process: PidOne) -> bool:
    """The command, still running, has a session of this database waiting on a lock ``blocker`` holds."""
    assert process.exit_code(timeout=0) is None, process.output()
    # Inside the blocker's transaction the statistics views keep their first reading: take a new one.
    blocker.execute("SELECT pg_stat_clear_snapshot()")
    waiting = blocker.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    ).fetchone()[0]
    return waiting > 0


def test_a_python_process_without_a_handler_ignores_sigterm_as_pid_1(pid_one, job_env):
    """What the manifests' commands guard against, shown with this harness: the signal is ignored."""
    process = pid_one(["python", "-c", "import time; time.sleep(60)"], job_env)
    assert process.pid_in_namespace() == 1
    os.kill(process.host_pid, signal.SIGTERM)
    assert process.exit_code(timeout=STILL_RUNNING_SECONDS) is None, "SIGTERM ended a PID 1 without a handler"


def test_migration_job_ends_on_sigterm_while_waiting_on_a_lock_and_a_rerun_completes(
    rendered, pid_one, job_env, database
):
    command = container_command(rendered, "Job", "dotmac-platform-migrate")
    # Hold the migration history table, as a long transaction would: migrate waits for the lock.
    with psycopg.connect(database, autocommit=True) as blocker:
        blocker.execute(
            "CREATE TABLE django_migrations (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
            " app varchar(255) NOT NULL, name varchar(255) NOT NULL, applied timestamptz NOT NULL)"
        )
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE django_migrations IN ACCESS EXCLUSIVE MODE")
        process = pid_one(command, job_env)
        assert process.pid_in_namespace() == 1

        wait_until(
            lambda: waits_on_a_lock(blocker, process), timeout=60, interval=0.2, message="migrate waiting"
        )
        os.kill(process.host_pid, signal.SIGTERM)
        started = time.monotonic()
        code = process.exit_code(timeout=SIGTERM_ANSWER_SECONDS)
        assert code == 128 + signal.SIGTERM, f"exit {code} after SIGTERM:\n{process.output()}"
        assert time.monotonic() - started < SIGTERM_ANSWER_SECONDS
        blocker.execute("ROLLBACK")
        assert blocker.execute("SELECT count(*) FROM django_migrations").fetchone()[0] == 0

    # The Job's next attempt: the same command runs every migration to the end.
    rerun = pid_one(command, job_env)
    assert rerun.exit_code(timeout=300) == 0, rerun.output()
    check = subprocess.run(
        ["python", "manage.py", "migrate", "--check"], cwd=REPO, env=job_env, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_activation_cronjob_ends_on_sigterm_while_waiting_on_a_lock(rendered, pid_one, job_env, database):
    migrated = subprocess.run(
        ["python", "manage.py", "migrate", "--noinput"], cwd=REPO, env=job_env, capture_output=True, text=True
    )
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    command = container_command(rendered, "CronJob", "dotmac-platform-activate-pending")
    # Hold the subscribers table, as a long transaction would: the run waits for the lock.
    with psycopg.connect(database, autocommit=True) as blocker:
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE subscribers_subscriber IN ACCESS EXCLUSIVE MODE")
        process = pid_one(command, job_env)
        assert process.pid_in_namespace() == 1
        wait_until(
            lambda: waits_on_a_lock(blocker, process), timeout=60, interval=0.2, message="the run waiting"
        )
        os.kill(process.host_pid, signal.SIGTERM)
        code = process.exit_code(timeout=SIGTERM_ANSWER_SECONDS)
        assert code == 128 + signal.SIGTERM, f"exit {code} after SIGTERM:\n{process.output()}"
        blocker.execute("ROLLBACK")


def test_both_commands_install_the_same_handler_before_running_manage_py(rendered):
    for kind, name, subcommand in (
        ("Job", "dotmac-platform-migrate", '["manage.py", "migrate", "--noinput"]'),
        ("CronJob", "dotmac-platform-activate-pending", '["manage.py", "activate_pending"]'),
    ):
        python, flag, code = container_command(rendered, kind, name)
        assert (python, flag) == ("python", "-c"), name
        handler = code.index("signal.signal(signal.SIGTERM")
        assert handler < code.index(f"sys.argv = {subcommand}") < code.index("runpy.run_path"), name
