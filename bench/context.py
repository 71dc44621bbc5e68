"""What every figure works with: the sizes of this run, the real servers, the seeded data.

:class:`Bench` starts PostgreSQL and Redis, migrates and seeds a database, and starts gunicorn
servers by name on demand (in parallel), all with production settings; :meth:`Bench.close` stops
everything it started.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .report import BenchError, marked_json
from .servers import PROJECT_DIR, BenchServer, PostgresServer, RedisServer, subprocess_env

DATABASE_NAME = "dotmac_bench"
# Every Django request carries what the ingress adds: TLS terminated upstream.
FORWARDED_HTTPS = {"X-Forwarded-Proto": "https"}
# Variables of the caller's environment that would change what is measured (beyond those that
# tests.servers.subprocess_env already leaves out).
_SCRUBBED_PREFIXES = (
    "GUNICORN_", "PROMETHEUS_", "METRICS_", "HEALTH_", "DRAIN_", "CIRCUIT_", "WEB_CONCURRENCY",
    "TENANT_", "OPS_", "LOG_", "SECURE_", "ALLOWED_HOSTS",
)  # fmt: skip


def stop_all(*servers: BenchServer) -> None:
    """Stop several servers at once (their shutdowns overlap)."""
    for server in servers:
        server.quit()
    for server in servers:
        server.stop()


@dataclass(frozen=True)
class Sizes:
    """How much of everything a run does. ``FULL`` is ``make bench``; ``SMOKE`` proves the code runs."""

    rounds: int  # side-by-side rounds per ratio (A, B alternating)
    interleaved_rounds: int  # rounds of the ratios measured in one worker, request by request
    workers: int  # gunicorn workers of the servers measured for latency and memory
    scrape_workers: int  # gunicorn workers of the servers measured for /metrics
    load_seconds: int  # one wrk run
    warmup_seconds: int  # before the first round of each server (0: none)
    connections: int  # wrk connections for throughput (one wrk thread)
    latency_seconds: int  # one latency run
    scrape_tenants: int
    recycles: int
    scrape_samples: int  # scrapes per server per figure
    growth_tenants: tuple[int, ...]
    memory_tenants: int
    memory_warmup_requests: int
    memory_requests: int
    breaker_calls: int  # concurrent calls through one breaker
    breaker_upstream_seconds: float
    fail_fast_calls: int
    drain_inflight: tuple[int, ...]
    drain_request_seconds: float
    drain_delay_seconds: float


FULL = Sizes(
    rounds=5,
    interleaved_rounds=5,
    workers=2,  # the production default (WEB_CONCURRENCY)
    scrape_workers=4,
    load_seconds=3,
    warmup_seconds=1,
    connections=8,  # two per worker thread
    latency_seconds=5,
    scrape_tenants=100,
    recycles=500,
    scrape_samples=5,
    growth_tenants=(10, 100, 1000),
    memory_tenants=100,
    memory_warmup_requests=1000,
    memory_requests=10_000,
    breaker_calls=8,
    breaker_upstream_seconds=0.2,
    fail_fast_calls=2000,
    drain_inflight=(0, 1, 16),
    drain_request_seconds=1.0,
    drain_delay_seconds=5,
)
SMOKE = Sizes(
    rounds=1,
    interleaved_rounds=1,
    workers=1,
    scrape_workers=1,
    load_seconds=1,
    warmup_seconds=0,
    connections=8,
    latency_seconds=1,
    scrape_tenants=3,
    recycles=3,
    scrape_samples=2,
    growth_tenants=(2, 3, 4),
    memory_tenants=3,
    memory_warmup_requests=50,
    memory_requests=200,
    breaker_calls=8,
    breaker_upstream_seconds=0.05,
    fail_fast_calls=50,
    drain_inflight=(0, 1, 2),
    drain_request_seconds=0.3,
    drain_delay_seconds=0.5,
)


@dataclass(frozen=True)
class ServerSpec:
    """How a named server differs from the full production stack."""

    app: str | None = None
    settings: str = "bench.settings"
    workers: int | None = None  # None: the run's ``Sizes.workers``
    ready_path: str = "/bench/trivial/"
    env: dict[str, str] = field(default_factory=dict)


# Servers compared for throughput run one worker: wrk gets one core, the worker the other. With
# two workers, which one accepts wrk's keep-alive connections changes from run to run (measured:
# in some runs one worker took all 16 and the other idled, halving throughput), a noise far
# larger than the differences the ratios are after.
THROUGHPUT_WORKERS = 1

SERVERS = {
    "hello": ServerSpec(app="bench.hello:application", ready_path="/", workers=THROUGHPUT_WORKERS),
    "full": ServerSpec(workers=THROUGHPUT_WORKERS),
    "no-ops": ServerSpec(
        settings="bench.settings_without",
        workers=THROUGHPUT_WORKERS,
        env={"BENCH_WITHOUT_MIDDLEWARE": "apps.ops."},
    ),
    "persistent": ServerSpec(env={"DATABASE_POOL": "false"}, workers=THROUGHPUT_WORKERS),
    # Both variants in one worker, request by request (bench/interleaved.py).
    "interleaved-ops": ServerSpec(
        app="bench.interleaved:application",
        ready_path="/~with/bench/trivial/",
        workers=THROUGHPUT_WORKERS,
        env={"BENCH_WITHOUT_MIDDLEWARE": "apps.ops."},
    ),
    "interleaved-metrics": ServerSpec(
        app="bench.interleaved:application",
        ready_path="/~with/bench/trivial/",
        workers=THROUGHPUT_WORKERS,
        env={"BENCH_WITHOUT_MIDDLEWARE": "apps.ops.metrics."},
    ),
    # The same comparison for django-prometheus' default middleware, the peer.
    "interleaved-metrics-peer": ServerSpec(
        app="bench.interleaved:application",
        ready_path="/~with/bench/trivial/",
        workers=THROUGHPUT_WORKERS,
        env={"BENCH_WITHOUT_MIDDLEWARE": "django_prometheus.", "BENCH_METRICS_PEER": "django-prometheus"},
    ),
    # The probes are measured with the production worker count.
    "probes": ServerSpec(),
    # Readiness without the per-process result cache: every /ready runs the checks.
    "ready-uncached": ServerSpec(env={"HEALTH_CACHE_TTL": "0"}),
}


class Bench:
    """The run's servers and data. Use as a context manager; everything is stopped on exit."""

    def __init__(self, sizes: Sizes, *, log: Callable[[str], None] = print) -> None:
        self.sizes = sizes
        self.log = log
        self.run_dir = Path(tempfile.mkdtemp(prefix="dotmac-bench-"))
        self.postgres: PostgresServer | None = None
        self.redis: RedisServer | None = None
        self.seed: dict = {}
        self.env: dict[str, str] = {}
        self._servers: dict[str, BenchServer] = {}
        self.keep_run_dir = False
        self.metrics_token = secrets.token_urlsafe(24)
        self.ops_token = secrets.token_urlsafe(24)

    # --- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> Bench:
        try:
            self._start_backends()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _start_backends(self) -> None:
        self.log("starting PostgreSQL and Redis")
        self.redis = RedisServer().start()
        self.postgres = PostgresServer().start()
        self._create_database()
        self.env = self._base_env()
        self.log("migrating, collecting static files, seeding")
        # Static files (production's manifest storage needs them) are collected meanwhile.
        collectstatic = subprocess.Popen(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
            cwd=PROJECT_DIR,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        tenants = max((*self.sizes.growth_tenants, self.sizes.scrape_tenants, self.sizes.memory_tenants))
        seeded = self._python("-m", "bench.seed", "--migrate", f"--tenants={tenants}", "--subscribers=50")
        self.seed = marked_json(seeded)
        _, errors = collectstatic.communicate(timeout=300)
        if collectstatic.returncode != 0:
            raise BenchError(f"collectstatic failed: {errors}")

    def close(self) -> None:
        self.stop_shared()
        if self.redis:
            self.redis.destroy()
        if self.postgres:
            self.postgres.destroy()
        if self.keep_run_dir:
            self.log(f"logs kept in {self.run_dir}")
        else:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    # --- environment ----------------------------------------------------------------------------
    def _create_database(self) -> None:
        import psycopg

        assert self.postgres is not None
        with psycopg.connect(
            host="127.0.0.1",
            port=self.postgres.port,
            user=self.postgres.user,
            password=self.postgres.password,
            dbname="postgres",
            autocommit=True,
        ) as connection:
            connection.execute(f'CREATE DATABASE "{DATABASE_NAME}"')

    def _base_env(self) -> dict[str, str]:
        """Production settings, as the container would get them, pointed at this run's servers."""
        assert self.postgres is not None and self.redis is not None
        env = {
            key: value for key, value in subprocess_env().items() if not key.startswith(_SCRUBBED_PREFIXES)
        }
        env.update(
            DJANGO_ENV="production",
            DJANGO_SETTINGS_MODULE="bench.settings",
            DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
            ALLOWED_HOSTS="127.0.0.1,localhost",
            DATABASE_URL=self.postgres.url(DATABASE_NAME),
            REDIS_URL=self.redis.url,
            STATIC_ROOT=str(self.run_dir / "static"),
            DATA_DIR=str(self.run_dir / "data"),
            # What API clients behind the ingress may send; the hostile traffic names tenants in it.
            TENANT_HEADER_ENABLED="true",
            METRICS_BEARER_TOKEN=self.metrics_token,
            OPS_API_TOKEN=self.ops_token,
            # Recycling would restart workers in the middle of throughput runs; the figures that
            # are about recycling turn it on themselves.
            GUNICORN_MAX_REQUESTS="0",
            HOME=str(self.run_dir),
        )
        return env

    def _python(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> str:
        completed = subprocess.run(
            [sys.executable, *args],
            cwd=PROJECT_DIR,
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if completed.returncode != 0:
            raise BenchError(f"python {' '.join(args)} failed:\n{completed.stdout}\n{completed.stderr}")
        return completed.stdout

    def python(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> str:
        """Run ``python *args`` in the project with the run's environment (plus ``env``)."""
        return self._python(*args, env={**self.env, **(env or {})}, timeout=timeout)

    # --- servers --------------------------------------------------------------------------------
    @property
    def django_headers(self) -> dict[str, str]:
        return dict(FORWARDED_HTTPS)

    @property
    def metrics_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.metrics_token}"}

    def new_server(self, name: str, spec: ServerSpec, **env: str) -> BenchServer:
        """A server that is not shared between figures; the caller stops it."""
        metrics_dir = self.run_dir / f"prometheus-{name}"
        metrics_dir.mkdir(exist_ok=True)
        server_env = {
            **self.env,
            "DJANGO_SETTINGS_MODULE": spec.settings,
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            **spec.env,
            **env,
        }
        return BenchServer(
            name=name,
            env=server_env,
            run_dir=self.run_dir,
            app=spec.app,
            workers=spec.workers or self.sizes.workers,
            ready_path=spec.ready_path,
        )

    def start_shared_servers(self) -> None:
        """Start every shared server at once (boots overlap), before anything is measured."""
        self.servers(*SERVERS)

    def servers(self, *names: str) -> list[BenchServer]:
        """The shared servers ``names`` (see ``SERVERS``), started in parallel when not running."""
        missing = [name for name in names if name not in self._servers]
        if missing:
            self.log(f"starting gunicorn: {', '.join(missing)}")
            for server in self.start_all(*(self.new_server(name, SERVERS[name]) for name in missing)):
                self._servers[server.name] = server
        return [self._servers[name] for name in names]

    def start_all(self, *servers: BenchServer) -> list[BenchServer]:
        """Start several servers at once (their boots overlap); return when all serve."""
        with ThreadPoolExecutor(max_workers=len(servers) or 1) as pool:
            starts = [pool.submit(server.start) for server in servers]
            failures = [future.exception() for future in starts if future.exception() is not None]
        if failures:
            stop_all(*servers)
            raise BenchError(f"{len(failures)} gunicorn server(s) did not start: {failures[0]}")
        return list(servers)

    def stop_shared(self) -> None:
        """Stop the shared servers, all at once."""
        stop_all(*self._servers.values())
        self._servers.clear()
