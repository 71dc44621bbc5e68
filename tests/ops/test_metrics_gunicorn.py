"""Metrics under real gunicorn: 4 workers, recycled every few requests, scraped over HTTP.

gunicorn runs with ``deploy/gunicorn.conf.py`` and its hooks (directory wiped in ``on_starting``,
dead workers folded in ``child_exit``). The application is preloaded in these tests only so that a
recycled worker starts in milliseconds and hundreds of recycles fit in seconds; the hooks and the
metrics code paths are the ones production runs.
"""

from __future__ import annotations

import contextlib
import glob
import http.client
import os
import random
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.gunicorn import GunicornServer
from tests.hostile_traffic import hostile_requests
from tests.servers import free_port, wait_until

pytestmark = [pytest.mark.servers, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TOKEN = "scrape-token-for-tests"
BASE_DOMAIN = "dotmac.test"
TENANTS = ("alpha", "beta", "gamma")


class Gunicorn(GunicornServer):
    """The server under test, with its metrics directory; a quick stop (SIGQUIT) at the end, with a
    graceful timeout well below the stop's wait, so the master always outlives its workers."""

    GRACEFUL_TIMEOUT = 5

    def __init__(self, env: dict[str, str], *, port: int, log_dir: Path) -> None:
        super().__init__(
            {**env, "GUNICORN_GRACEFUL_TIMEOUT": str(self.GRACEFUL_TIMEOUT)},
            port=port,
            log_dir=log_dir,
            args=["--log-level", "info"],
            stop_signal=signal.SIGQUIT,  # quick stop; the drain is tested elsewhere
            stop_timeout=self.GRACEFUL_TIMEOUT + 25,
        )
        self.metrics_dir = Path(self.env["PROMETHEUS_MULTIPROC_DIR"])

    def is_serving(self) -> bool:
        # A probe, which is never counted: the counts the tests assert on start at zero.
        return self.request("/live")[0] == 200

    def request(
        self, path: str, *, method: str = "GET", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """One request on a fresh connection: every response received was fully processed."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def scrape(self) -> str:
        status, body = self.request("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200, body[:500]
        return body.decode()

    def metric_files(self) -> int:
        return len(glob.glob(str(self.metrics_dir / "*.db")))

    def workers_booted(self) -> int:
        return self.stderr_text().count("Booting worker with pid")


@pytest.fixture
def start_gunicorn(server_env, tmp_path):
    stops = contextlib.ExitStack()  # every server started is stopped, even when one stop fails

    def start(**extra_env: str) -> Gunicorn:
        port = free_port()
        metrics_dir = tmp_path / f"prometheus-{port}"
        env = dict(server_env)
        env.update(
            WEB_CONCURRENCY="4",
            GUNICORN_THREADS="2",
            GUNICORN_MAX_REQUESTS="0",
            GUNICORN_MAX_REQUESTS_JITTER="0",
            GUNICORN_RUNTIME_DIR=str(tmp_path / f"run-{port}"),
            GUNICORN_CMD_ARGS="--preload",
            PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
            METRICS_BEARER_TOKEN=TOKEN,
            DJANGO_DEBUG="false",
            ALLOWED_HOSTS=f"127.0.0.1,localhost,.{BASE_DOMAIN}",
            LOG_LEVEL="warning",
        )
        env.update(extra_env)
        server = Gunicorn(env, port=port, log_dir=tmp_path)
        stops.callback(server.stop)
        return server.start(timeout=60)

    with stops:
        yield start


def samples(exposition: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples called ``name`` by their sorted label pairs."""
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name
    }


def by_label(exposition: str, name: str, label: str, **only: str) -> Counter:
    """Sum of the samples called ``name`` (with the labels ``only``) by the value of ``label``."""
    totals = Counter()
    for labels, value in samples(exposition, name).items():
        labels = dict(labels)
        if only.items() <= labels.items():
            totals[labels[label]] += value
    return totals


def series_by_metric(exposition: str) -> dict[str, set[tuple[tuple[str, str], ...]]]:
    """Distinct label sets of each metric family (histogram buckets count once, not per ``le``)."""
    series: dict[str, set] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
            series.setdefault(family.name, set()).add(labels)
    return series


def send_all(server: Gunicorn, requests: Iterable[dict], *, threads: int = 8) -> Counter:
    """Send every request (kwargs of ``Gunicorn.request``) from a thread pool; count statuses."""

    def one(kwargs: dict) -> int:
        return server.request(**kwargs)[0]

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return Counter(pool.map(one, list(requests)))


def tenant_requests(cookies: dict[str, str], counts: dict[str, int]) -> list[dict]:
    """Home page requests of a logged-in member of each tenant, ``counts[slug]`` of them, shuffled."""
    requests = [
        {"path": "/", "headers": {"Cookie": cookies[slug]}} for slug, n in counts.items() for _ in range(n)
    ]
    random.Random(5).shuffle(requests)
    return requests


@pytest.fixture
def three_tenants(tenant_factory, member_cookie) -> dict[str, str]:
    """The Cookie header of a logged-in member of each of ``TENANTS``, by slug."""
    return {slug: member_cookie(tenant_factory(slug)) for slug in TENANTS}


def test_counts_are_exact_across_recycled_workers(start_gunicorn, three_tenants):
    server = start_gunicorn(GUNICORN_MAX_REQUESTS="5")
    batch = {"alpha": 30, "beta": 20, "gamma": 10}
    counts = Counter()
    # A gthread worker may accept several connections after its fifth request before it stops, so
    # how many requests 60 recycles take depends on the machine: send batches until they happened.
    deadline = time.monotonic() + 240
    while server.workers_booted() < 4 + 60:
        assert time.monotonic() < deadline, f"only {server.workers_booted()} workers booted"
        assert send_all(server, tenant_requests(three_tenants, batch)) == {200: sum(batch.values())}
        counts.update(batch)

    exposition = server.scrape()
    assert by_label(exposition, "http_tenant_requests_total", "tenant") == counts
    assert by_label(exposition, "http_tenant_request_duration_seconds_count", "tenant") == counts
    home = {"route": "home", "method": "GET"}
    assert by_label(exposition, "http_requests_total", "status", **home) == {"200": counts.total()}
    assert by_label(exposition, "http_request_duration_seconds_count", "route", **home) == {
        "home": counts.total()
    }


def test_metrics_files_stay_bounded_after_hundreds_of_recycles(start_gunicorn):
    server = start_gunicorn(GUNICORN_MAX_REQUESTS="2", GUNICORN_THREADS="1")
    # The cheapest request there is (a refused scrape: no database, no template), so that the
    # time goes into recycling workers.
    refused_scrape = {"path": "/metrics"}
    # Per live worker: a counter, a histogram and a live gauge file; one archive per file type.
    bound = 4 * 4 + 6
    sent = 0
    most_files = 0
    deadline = time.monotonic() + 240
    while server.workers_booted() < 4 + 500:
        assert time.monotonic() < deadline, f"only {server.workers_booted()} workers booted"
        assert send_all(server, [refused_scrape] * 200, threads=4) == {401: 200}
        sent += 200
        most_files = max(most_files, server.metric_files())

    wait_until(lambda: server.metric_files() <= bound, timeout=30, message="dead workers folded")
    assert most_files <= bound + 4 * 3  # at worst a few dying workers not folded yet
    refused = {"method": "any", "route": "anonymous", "status": "401"}
    assert samples(server.scrape(), "http_requests_total")[tuple(sorted(refused.items()))] == sent


def sample_lines(exposition: str) -> set[str]:
    """Every series of the exposition: its sample lines without their values."""
    return {line.rsplit(" ", 1)[0] for line in exposition.splitlines() if line and not line.startswith("#")}


def test_hostile_anonymous_traffic_adds_at_most_20_series(start_gunicorn, three_tenants):
    server = start_gunicorn(TENANT_HEADER_ENABLED="true", TENANT_BASE_DOMAIN=BASE_DOMAIN)
    # A pod's steady state: its members' pages, and scrapes (the second one shows the first counted).
    send_all(server, tenant_requests(three_tenants, dict.fromkeys(TENANTS, 5)))
    server.scrape()
    before = sample_lines(server.scrape())

    attack = hostile_requests(10_000, tenants=list(TENANTS), base_domain=BASE_DOMAIN)
    statuses = send_all(server, attack)

    assert sum(statuses.values()) == 10_000 and not any(status >= 500 for status in statuses), statuses
    exposition = server.scrape()
    added = sorted(sample_lines(exposition) - before)
    assert len(added) <= 20, added
    # No tenant got a label from a request that only named it.
    assert by_label(exposition, "http_tenant_requests_total", "tenant") == dict.fromkeys(TENANTS, 5)
    admitted = (server.metrics_dir / "admitted-tenants.txt").read_text().split()
    assert sorted(admitted) == sorted(TENANTS)


def test_exposition_of_all_workers_passes_promtool(start_gunicorn, three_tenants):
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: `make system-deps` installs the Debian package prometheus"
    server = start_gunicorn(GUNICORN_MAX_REQUESTS="3")
    send_all(server, tenant_requests(three_tenants, dict.fromkeys(TENANTS, 10)))
    server.request("/no-such-page")
    server.request("/subscribers/")
    body = server.scrape()
    for name in (
        "http_requests_total",
        "http_tenant_request_duration_seconds_bucket",
        "django_db_execute_total",
    ):
        assert name in body
    check = subprocess.run(
        [promtool, "check", "metrics"], input=body.encode(), capture_output=True, timeout=30
    )
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()


def test_production_process_model_counts_and_needs_the_token(start_gunicorn, three_tenants):
    # No preload: every worker imports the application itself after the master prepared the directory.
    server = start_gunicorn(GUNICORN_CMD_ARGS="")
    assert server.request("/metrics")[0] == 401
    assert server.request("/metrics", headers={"Authorization": "Bearer wrong"})[0] == 401
    assert server.request("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
    # Scraped at the pod IP, which is not an allowed host.
    status, _ = server.request(
        "/metrics", headers={"Authorization": f"Bearer {TOKEN}", "Host": "10.0.0.7:8000"}
    )
    assert status == 200

    assert send_all(server, tenant_requests(three_tenants, {"alpha": 12, "beta": 8})) == {200: 20}
    assert by_label(server.scrape(), "http_tenant_requests_total", "tenant") == {"alpha": 12, "beta": 8}

    # Tenant lookups used the database; every connection went back to the pool after its request
    # (a worker gives it back when the response is closed, just after the client has read it).
    def connections_in_use() -> list[float]:
        return [
            sample.value
            for family in text_string_to_metric_families(server.scrape())
            if family.name == "database_connections_active"
            for sample in family.samples
            if sample.labels == {"alias": "default"}
        ]

    wait_until(lambda: connections_in_use() == [0.0], timeout=30, message="connections back in the pool")


def test_metrics_dir_is_wiped_at_start(start_gunicorn, tmp_path):
    stale = tmp_path / "stale"
    os.makedirs(stale)
    (stale / "counter_999999.db").write_bytes(b"\0" * 16)
    server = start_gunicorn(PROMETHEUS_MULTIPROC_DIR=str(stale))
    assert not (stale / "counter_999999.db").exists()
    assert server.request("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
