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
import string
import subprocess
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.gunicorn import GunicornServer
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
        # HEAD, so that the GET counts the tests assert on start at zero.
        return self.request("/metrics", method="HEAD")[0] == 401

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


def http_requests(exposition: str) -> dict[tuple[tuple[str, str], ...], float]:
    """``http_requests_total`` samples by their sorted label pairs."""
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        if family.name == "http_requests"
        for sample in family.samples
        if sample.name == "http_requests_total"
    }


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


def tenant_requests(counts: dict[str, int]) -> list[dict]:
    requests = [
        {"path": "/", "headers": {"X-Tenant-ID": slug}} for slug, n in counts.items() for _ in range(n)
    ]
    random.Random(5).shuffle(requests)
    return requests


@pytest.fixture
def three_tenants(tenant_factory):
    return [tenant_factory(slug) for slug in TENANTS]


def test_counts_are_exact_across_recycled_workers(start_gunicorn, three_tenants):
    server = start_gunicorn(GUNICORN_MAX_REQUESTS="5", TENANT_HEADER_ENABLED="true")
    batch = {"alpha": 30, "beta": 20, "gamma": 10}
    counts = Counter()
    # A gthread worker may accept several connections after its fifth request before it stops, so
    # how many requests 60 recycles take depends on the machine: send batches until they happened.
    deadline = time.monotonic() + 240
    while server.workers_booted() < 4 + 60:
        assert time.monotonic() < deadline, f"only {server.workers_booted()} workers booted"
        assert send_all(server, tenant_requests(batch)) == {200: sum(batch.values())}
        counts.update(batch)

    scraped = http_requests(server.scrape())
    by_tenant = Counter()
    for labels, value in scraped.items():
        label = dict(labels)
        if label["route"] == "home":
            assert (label["method"], label["status"]) == ("GET", "200")
            by_tenant[label["tenant"]] += value
    assert by_tenant == counts


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
    samples = http_requests(server.scrape())
    refused = {"method": "GET", "route": "ops:metrics", "status": "401", "tenant": "none"}
    assert samples[tuple(sorted(refused.items()))] == sent


def _random_token(rng: random.Random, alphabet: str, low: int, high: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(low, high)))


def attack_requests(count: int, seed: int = 7) -> list[dict]:
    """Requests a scanner or a hostile client could send: every label source randomised."""
    rng = random.Random(seed)
    slug_chars = string.ascii_lowercase + string.digits + "-"
    odd_methods = ["BREW", "PROPFIND", "MKCOL", "PURGE", "SEARCH", "LOCK", "FOOBAR", "M-SEARCH"]
    requests = []
    for i in range(count):
        kind = i % 4
        headers = {"X-Tenant-ID": _random_token(rng, slug_chars + "_.%$", 1, 40)}
        if kind == 1:
            headers["Host"] = f"{_random_token(rng, slug_chars, 1, 30)}.{BASE_DOMAIN}"
        path = rng.choice(
            [
                f"/{_random_token(rng, slug_chars, 1, 20)}/{rng.randint(0, 10**9)}",
                f"/subscribers/{rng.randint(1, 10**9)}/",
                f"/subscribers/{rng.randint(1, 10**9)}/edit/",
                "/wp-login.php?" + _random_token(rng, slug_chars, 1, 30),
                "/",
            ]
        )
        method = rng.choice(["GET", "GET", "POST", "HEAD", rng.choice(odd_methods)]) if kind != 2 else "GET"
        requests.append({"path": path, "method": method, "headers": headers})
    return requests


def test_cardinality_attack_adds_at_most_a_handful_of_series(start_gunicorn, three_tenants):
    server = start_gunicorn(TENANT_HEADER_ENABLED="true", TENANT_BASE_DOMAIN=BASE_DOMAIN)
    # Legitimate traffic, then a first small wave of the attack: the baseline has the label
    # values such traffic can produce at all (methods x routes x statuses, tenant "none").
    send_all(server, tenant_requests(dict.fromkeys(TENANTS, 5)))
    send_all(server, [{"path": "/", "headers": {"Host": f"alpha.{BASE_DOMAIN}"}}] * 5)
    send_all(server, attack_requests(300, seed=1))
    before = series_by_metric(server.scrape())

    statuses = send_all(server, attack_requests(5000, seed=7))

    assert sum(statuses.values()) == 5000 and 500 not in statuses, statuses
    after = series_by_metric(server.scrape())
    growth = {name: after[name] - before.get(name, set()) for name in after}
    too_many = {name: sorted(new) for name, new in growth.items() if len(new) > 5}
    assert not too_many, too_many
    # Absolute bounds: every label value comes from a closed set.
    for labels in after["http_requests"]:
        label = dict(labels)
        assert label["tenant"] in {*TENANTS, "none", "other"}, label
        assert label["method"] in {"GET", "POST", "HEAD", "other"}, label
        assert label["route"] in {
            "home",
            "subscribers:detail",
            "subscribers:edit",
            "unmatched",
            "ops:metrics",
        }
    assert len(after["http_requests"]) <= 80
    admitted = (server.metrics_dir / "admitted-tenants.txt").read_text().split()
    assert set(admitted) <= set(TENANTS)


def test_exposition_of_all_workers_passes_promtool(start_gunicorn, three_tenants):
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: `make system-deps` installs the Debian package prometheus"
    server = start_gunicorn(GUNICORN_MAX_REQUESTS="3", TENANT_HEADER_ENABLED="true")
    send_all(server, tenant_requests(dict.fromkeys(TENANTS, 10)))
    server.request("/no-such-page")
    server.request("/subscribers/")
    body = server.scrape()
    for name in ("http_requests_total", "http_request_duration_seconds_bucket", "django_db_execute_total"):
        assert name in body
    check = subprocess.run(
        [promtool, "check", "metrics"], input=body.encode(), capture_output=True, timeout=30
    )
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()


def test_production_process_model_counts_and_needs_the_token(start_gunicorn, three_tenants):
    # No preload: every worker imports the application itself after the master prepared the directory.
    server = start_gunicorn(GUNICORN_CMD_ARGS="", TENANT_HEADER_ENABLED="true")
    assert server.request("/metrics")[0] == 401
    assert server.request("/metrics", headers={"Authorization": "Bearer wrong"})[0] == 401
    assert server.request("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
    # Scraped at the pod IP, which is not an allowed host.
    status, _ = server.request(
        "/metrics", headers={"Authorization": f"Bearer {TOKEN}", "Host": "10.0.0.7:8000"}
    )
    assert status == 200

    assert send_all(server, tenant_requests({"alpha": 12, "beta": 8})) == {200: 20}
    exposition = server.scrape()
    home = Counter()
    for labels, value in http_requests(exposition).items():
        if dict(labels)["route"] == "home":
            home[dict(labels)["tenant"]] += value
    assert home == {"alpha": 12, "beta": 8}

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
