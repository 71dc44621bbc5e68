"""A fleet on loopback: PostgreSQL, Redis, a provisioning API, pods, an ingress and a controller.

:class:`Fleet` puts it together from the shipped manifests (see the other modules of this package)
and takes it down again, also when a test fails. ``overrides`` are the test's overlay: values a
scenario sets on top of the ConfigMap (each scenario says which and why).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import psycopg

from tests.e2e.app_server import collect_static
from tests.fleet.controller import Controller
from tests.fleet.ingress import Ingress
from tests.fleet.load import Load, StaffMember
from tests.fleet.manifests import CronJob, activation_cronjob, migration_job, web_tier
from tests.fleet.pods import Pod, container_env
from tests.fleet.provisioning import ProvisioningAPI
from tests.fleet.seed import JSON_MARK
from tests.servers import (
    PROJECT_DIR,
    SESSION_VARIABLE,
    PostgresServer,
    RedisServer,
    ServerError,
    subprocess_env,
)

DATABASE = "dotmac"  # the name DATABASE_URL uses in the manifests


class Fleet:
    def __init__(
        self,
        *,
        propagation_lag: float,
        replicas: int | None = None,
        staff: int = 4,
        pending: int = 0,
        overrides: Mapping[str, str] | None = None,
        ingress_settings: Mapping[str, object] | None = None,
        static_root: Path,
    ) -> None:
        self.web = web_tier()
        self.cronjob_spec = activation_cronjob()
        self.replicas = replicas or self.web.replicas
        self.propagation_lag = propagation_lag
        self.staff_count = staff
        self.pending_count = pending
        self.overrides = dict(overrides or {})
        self.ingress_settings = dict(ingress_settings or {})  # the test's overlay of the controller's
        self.static_root = static_root
        self.secrets = {
            name: secrets.token_urlsafe(24)
            for name in (
                "DJANGO_SECRET_KEY", "OPS_API_TOKEN", "METRICS_BEARER_TOKEN", "PROVISIONING_API_TOKEN",
                "POSTGRES_PASSWORD", "REDIS_PASSWORD",
            )
        }  # fmt: skip
        self.postgres: PostgresServer | None = None
        self.redis: RedisServer | None = None
        self.provisioning: ProvisioningAPI | None = None
        self.ingress: Ingress | None = None
        self.controller: Controller | None = None
        self.cron: CronRunner | None = None
        self.seeded: dict = {}
        self._pods: list[Pod] = []  # every pod created, deleted ones too (their directories go last)

    # --- Life cycle -----------------------------------------------------------------------------

    def start(self) -> Fleet:
        try:
            self._start()
        except BaseException:
            self.destroy()
            raise
        return self

    def _start(self) -> None:
        self.postgres = PostgresServer(user="dotmac", password=self.secrets["POSTGRES_PASSWORD"]).start()
        with psycopg.connect(self.postgres.url("postgres"), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {DATABASE}")
        self.redis = RedisServer(password=self.secrets["REDIS_PASSWORD"]).start()
        self.provisioning = ProvisioningAPI().start()
        self.env = self.container_env(self.web.container)
        self.run_migration_job()
        self.seeded = self._seed()
        collect_static(self.env, self.static_root)
        self.ingress = Ingress(self.web, settings=self.ingress_settings).start()
        self.controller = Controller(self.ingress, propagation_lag=self.propagation_lag)
        for _ in range(self.replicas):
            self.add_pod()
        self.controller.wait_ready(self.replicas, timeout=120)

    def run_migration_job(self) -> None:
        """The migration Job: its container's command, with its environment, within its deadline."""
        job = migration_job()
        self.migration_env = self.container_env(job.container)
        with tempfile.TemporaryDirectory(prefix="dotmac-migrate-") as data:
            env = {**subprocess_env(), **self.migration_env, "DATA_DIR": data}
            result = subprocess.run(
                list(job.container.command), cwd=PROJECT_DIR, env=env, capture_output=True, text=True,
                timeout=job.active_deadline_seconds,
            )  # fmt: skip
        if result.returncode != 0:
            raise ServerError(f"the migration Job failed:\n{result.stdout}\n{result.stderr}")

    def container_env(self, container) -> dict[str, str]:
        """A container's environment in this fleet: its manifest's, Services resolved, the overlay."""
        services = {
            "dotmac-postgres:5432": f"127.0.0.1:{self.postgres.port}",
            "dotmac-redis:6379": f"127.0.0.1:{self.redis.port}",
        }
        env = container_env(container, secrets=self.secrets, services=services)
        # The installation's overlay sets the provisioning API (docs/DEPLOYMENT.md, "Your overlay").
        env["PROVISIONING_API_URL"] = self.provisioning.url
        env.update(self.overrides)
        return env

    def _seed(self) -> dict:
        result = subprocess.run(
            [sys.executable, "-m", "tests.fleet.seed", "--staff", str(self.staff_count),
             "--pending", str(self.pending_count)],
            cwd=PROJECT_DIR, env={**subprocess_env(), **self.env}, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        for line in result.stdout.splitlines():
            if line.startswith(JSON_MARK):
                return json.loads(line[len(JSON_MARK) :])
        raise ServerError(f"seeding failed:\n{result.stdout}\n{result.stderr}")

    def add_pod(self, version: str = "fleet-1") -> Pod:
        pod = Pod(
            f"web-{len(self._pods)}",
            self.web.container,
            env=self.env,
            static_root=self.static_root,
            version=version,
            grace_seconds=self.web.termination_grace_seconds,
        )
        self._pods.append(pod)
        return self.controller.add(pod)

    def destroy(self) -> None:
        """Stop everything that was started, in reverse order; never raises before all is stopped."""
        steps = [
            lambda: self.cron and self.cron.stop(),
            lambda: self.controller and self.controller.stop(),
            *[(lambda pod=pod: pod.destroy()) for pod in self._pods],
            lambda: self.ingress and self.ingress.destroy(),
            lambda: self.provisioning and self.provisioning.stop(),
            lambda: self.redis and self.redis.destroy(),
            lambda: self.postgres and self.postgres.destroy(),
        ]
        errors = []
        for step in steps:
            try:
                step()
            except Exception as exc:  # keep stopping the rest
                errors.append(exc)
        if errors:
            raise errors[0]

    # --- Helpers for scenarios --------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The public host name, as the ConfigMap's ALLOWED_HOSTS names it."""
        return self.env["ALLOWED_HOSTS"].split(",")[0].strip()

    def staff(self) -> list[StaffMember]:
        """One member per seeded session, each on a client address of its own."""
        return [
            StaffMember(
                port=self.ingress.port,
                host=self.host,
                source_address=f"127.0.0.{10 + index}",
                cookies={self.seeded["session_cookie_name"]: session},
            )
            for index, session in enumerate(self.seeded["sessions"])
        ]

    def load(self, **options) -> Load:
        return Load(
            staff=self.staff(), subscriber_ids=self.seeded["active"], plan_id=self.seeded["plan"], **options
        )

    def database(self) -> psycopg.Connection:
        return psycopg.connect(self.postgres.url(DATABASE), autocommit=True)

    def subscriber_rows(self, emails: list[str]) -> dict[str, int]:
        """How many rows each email has in the subscribers table."""
        with self.database() as connection:
            rows = connection.execute(
                "SELECT email, count(*) FROM subscribers_subscriber WHERE email = ANY(%s) GROUP BY email",
                [emails],
            ).fetchall()
        found = dict(rows)
        return {email: found.get(email, 0) for email in emails}

    def subscriber_count(self) -> int:
        with self.database() as connection:
            return connection.execute("SELECT count(*) FROM subscribers_subscriber").fetchone()[0]

    def statuses(self, ids: list[int]) -> dict[int, str]:
        with self.database() as connection:
            return dict(
                connection.execute(
                    "SELECT id, status FROM subscribers_subscriber WHERE id = ANY(%s)", [ids]
                ).fetchall()
            )

    def start_cron(self, *, period: float | None = None) -> CronRunner:
        """Run the activation CronJob on its schedule (``period``: the test's overlay of it)."""
        self.cron = CronRunner(
            self.cronjob_spec, self.container_env(self.cronjob_spec.container), period=period
        ).start()
        return self.cron


class CronRunner:
    """The CronJob controller for one CronJob: a Job each period, honouring concurrencyPolicy Forbid
    (no new Job while one runs) and the Job's activeDeadlineSeconds (killed when it is over)."""

    def __init__(self, spec: CronJob, env: Mapping[str, str], *, period: float | None = None) -> None:
        self.spec = spec
        self.env = {**subprocess_env(), **env}
        self.period = period or spec.period_seconds
        self.runs: list[tuple[float, float, int | None, str]] = []  # (start, end, exit status, output)
        self.skipped = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.root = Path(tempfile.mkdtemp(prefix="dotmac-cron-"))

    def start(self) -> CronRunner:
        self._thread = threading.Thread(target=self._schedule, name="cronjob", daemon=True)
        self._thread.start()
        return self

    def _schedule(self) -> None:
        running: threading.Thread | None = None
        while not self._stop.wait(self.period):
            if running is not None and running.is_alive():
                if self.spec.concurrency_policy == "Forbid":
                    self.skipped += 1
                    continue
            running = threading.Thread(target=self._run_job, daemon=True)
            running.start()

    def _run_job(self) -> None:
        began = time.monotonic()
        env = {**self.env, "DATA_DIR": str(self.root), SESSION_VARIABLE: os.environ.get(SESSION_VARIABLE, "")}
        process = subprocess.Popen(
            list(self.spec.container.command), cwd=PROJECT_DIR, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            output, _ = process.communicate(timeout=self.spec.active_deadline_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        self.runs.append((began, time.monotonic(), process.returncode, output))

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        shutil.rmtree(self.root, ignore_errors=True)
