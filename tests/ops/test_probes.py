"""/live, /ready and /health: in-process through the middleware, and through real gunicorn servers
with their own Redis and PostgreSQL that the tests stop, freeze and bring back."""

from __future__ import annotations

import contextlib
import http.client
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from django.db.backends.signals import connection_created

from apps.ops.health.runner import reset as reset_cached_results
from apps.ops.probes import with_wsgi_liveness
from apps.ops.shutdown import state as shutdown
from dotmac.settings.env import cache_from_url
from dotmac.wsgi import application
from tests.gunicorn import GunicornServer
from tests.ops.breaker_support import trip
from tests.ops.health_support import RedisCommandCounter, fresh_health_state  # noqa: F401  (autouse)
from tests.servers import PostgresServer, RedisServer, free_port, wait_until

PROJECT_DIR = Path(__file__).resolve().parents[2]
TOKEN = "ops-token-0123456789abcdef"
PROBES = ("/live", "/ready", "/health")
TTL = 2.0  # HEALTH_CACHE_TTL's default, which the gunicorn servers here run with
KUBELET_TIMEOUT = 2.0  # the probes' timeoutSeconds: a slower answer is a failed probe


def body(response) -> dict:
    return json.loads(response.content)


@pytest.fixture
def unreachable_redis(settings):
    """Point the cache at a port where nothing listens: the cache check warns (connection refused)."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    settings.REDIS_URL = url
    settings.CACHES = cache_from_url(url, socket_timeout=0.5)
    return url


# --- /live -----------------------------------------------------------------------------------


def test_live_is_a_tiny_health_json_pass_that_is_never_cached(client):
    response = client.get("/live")
    assert response.status_code == 200
    assert body(response) == {"status": "pass"}
    assert response["Content-Type"] == "application/health+json"
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_live_makes_no_database_query_and_no_cache_call(client, redis_server, django_assert_num_queries):
    counter = RedisCommandCounter(redis_server.port)
    before = counter.calls()
    with django_assert_num_queries(0):
        for _ in range(5):
            assert client.get("/live").status_code == 200
        assert client.head("/live").status_code == 200
    after = counter.calls()
    # The only commands between the two readings are the two INFO calls that take them.
    changed = {
        name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)
    }
    assert changed == {"info": 1}


def test_live_stays_200_while_draining_and_ready_turns_503(client, db):
    shutdown.announce()
    assert client.get("/live").status_code == 200
    ready = client.get("/ready")
    assert ready.status_code == 503
    assert body(ready)["checks"]["shutdown"] == [{"status": "fail"}]


def _call_wsgi(app, path: str, method: str = "GET", **environ) -> tuple[str, dict, bytes]:
    captured = {}

    def start_response(status, headers):
        captured["status"], captured["headers"] = status, dict(headers)

    chunks = app({"PATH_INFO": path, "REQUEST_METHOD": method, **environ}, start_response)
    return captured["status"], captured["headers"], b"".join(chunks)


def test_the_wsgi_handler_answers_live_without_running_the_application():
    calls = []

    def django_stand_in(environ, start_response):
        calls.append(environ["PATH_INFO"])
        start_response("204 No Content", [])
        return [b""]

    app = with_wsgi_liveness(django_stand_in)
    for path in ("/live", "/live/"):
        status, headers, content = _call_wsgi(app, path)
        assert status == "200 OK"
        assert json.loads(content) == {"status": "pass"}
        assert headers["Content-Type"] == "application/health+json"
        assert headers["Cache-Control"] == "no-store"
        assert headers["Content-Length"] == str(len(content))
    status, headers, _ = _call_wsgi(app, "/live", method="POST")
    assert status == "405 Method Not Allowed"
    assert headers["Allow"] == "GET, HEAD"
    assert calls == []
    assert _call_wsgi(app, "/ready")[0] == "204 No Content"
    assert _call_wsgi(app, "/lively")[0] == "204 No Content"
    assert calls == ["/ready", "/lively"]


def test_the_project_wsgi_application_answers_live_in_front_of_django():
    # No django_db mark: pytest-django refuses any database access, so this also proves none.
    status, _headers, content = _call_wsgi(application, "/live", HTTP_HOST="10.1.2.3:8000")
    assert status == "200 OK"
    assert json.loads(content) == {"status": "pass"}


# --- Methods, headers, paths -----------------------------------------------------------------


@pytest.mark.parametrize("path", PROBES)
@pytest.mark.parametrize("method", ["post", "put", "patch", "delete", "options"])
def test_probes_accept_only_get_and_head(client, path, method):
    response = getattr(client, method)(path)
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert body(response)["allowed"] == ["GET", "HEAD"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", PROBES)
def test_head_gets_the_headers_of_get(client, path):
    response = client.head(path)
    assert response.status_code in (200, 503)
    assert response.content == b""
    assert response["Content-Type"] == "application/health+json"
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/live/", "/ready/", "/health/"])
def test_probes_answer_with_a_trailing_slash(client, path):
    response = client.get(path)
    assert response["Content-Type"] == "application/health+json"


@pytest.mark.parametrize("path", PROBES)
def test_probes_answer_any_host_and_are_not_redirected_to_https(client, settings, path, db):
    settings.ALLOWED_HOSTS = ["dotmac.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_REDIRECT_EXEMPT = []  # the middleware must not depend on the exemption list
    settings.DEBUG = False
    response = client.get(path, HTTP_HOST="10.1.2.3:8000")
    assert response.status_code in (200, 503)
    assert response["Content-Type"] == "application/health+json"
    # The same request to an ordinary page is refused by host validation.
    assert client.get("/", HTTP_HOST="10.1.2.3:8000").status_code == 400


# --- /ready and /health ----------------------------------------------------------------------


@pytest.mark.django_db
def test_ready_is_200_with_postgresql_and_redis_up(client):
    response = client.get("/ready")
    assert response.status_code == 200, response.content
    document = body(response)
    assert document["status"] in ("pass", "warn")
    for name in ("shutdown", "database", "cache", "migrations", "circuit_breakers"):
        assert document["checks"][name] == [{"status": "pass"}], name


@pytest.mark.django_db
def test_ready_stays_200_with_the_cache_check_at_warn_when_redis_is_unreachable(client, unreachable_redis):
    response = client.get("/ready")
    assert response.status_code == 200
    assert body(response)["status"] == "warn"
    assert body(response)["checks"]["cache"] == [{"status": "warn"}]


@pytest.mark.django_db
def test_anonymous_bodies_show_statuses_only_when_a_check_does_not_pass(client, settings, unreachable_redis):
    settings.OPS_API_TOKEN = TOKEN
    port = unreachable_redis.rsplit(":", 1)[1].split("/")[0]
    for path in ("/ready", "/health"):
        for authorization in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong-token"}):
            response = client.get(path, **authorization)
            assert response.status_code == 200
            document = body(response)
            text = json.dumps(document)
            for leak in ("output", "Error", "refused", "127.0.0.1", port, "observedValue", "time"):
                assert leak not in text, (path, leak, text)
            for entries in document["checks"].values():
                assert all(set(entry) == {"status"} for entry in entries)


@pytest.mark.django_db
def test_a_bearer_token_gets_messages_and_timings(client, settings, unreachable_redis):
    settings.OPS_API_TOKEN = TOKEN
    for path in ("/ready", "/health"):
        response = client.get(path, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200
        document = body(response)
        [cache_entry] = document["checks"]["cache"]
        assert cache_entry["output"].startswith("redis at 127.0.0.1:")
        assert "pages run without the cache" in cache_entry["output"]
        assert cache_entry["observedUnit"] == "s unreachable"
        assert "time" in cache_entry
        assert document["output"] == "not passing (not critical): cache"
        [database_entry] = document["checks"]["database"]
        assert database_entry["status"] == "pass"
        assert database_entry["componentId"] == "default"


@pytest.mark.django_db
def test_a_staff_session_gets_details_and_a_plain_user_does_not(client, django_user_model, unreachable_redis):
    staff = django_user_model.objects.create_user("operator", password="pw-123456", is_staff=True)
    client.force_login(staff)
    assert "output" in body(client.get("/ready"))["checks"]["cache"][0]
    plain = django_user_model.objects.create_user("subscriber-admin", password="pw-123456")
    client.force_login(plain)
    assert body(client.get("/ready"))["checks"]["cache"] == [{"status": "warn"}]


@pytest.mark.django_db
def test_an_anonymous_probe_loads_no_session(client, django_assert_num_queries, settings):
    settings.HEALTH_CHECKS = {"shutdown": {"class": "apps.ops.health.checks.ShutdownCheck"}}
    settings.HEALTH_READY_CHECKS = ["shutdown"]
    with django_assert_num_queries(0):
        assert client.get("/ready").status_code == 200


@pytest.mark.django_db
def test_details_policy_never_and_always(client, settings, unreachable_redis):
    settings.OPS_API_TOKEN = TOKEN
    settings.HEALTH_SHOW_DETAILS = "never"
    hidden = body(client.get("/ready", HTTP_AUTHORIZATION=f"Bearer {TOKEN}"))
    assert hidden["checks"]["cache"] == [{"status": "warn"}]
    settings.HEALTH_SHOW_DETAILS = "always"
    shown = body(client.get("/ready"))
    assert "unreachable" in shown["checks"]["cache"][0]["output"]


@pytest.mark.django_db
def test_health_reports_service_version_environment_uptime_and_checks(client, settings):
    settings.APP_VERSION = "2026.11.1"
    settings.OPS_API_TOKEN = TOKEN
    response = client.get("/health", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    document = body(response)
    assert document["serviceId"] == "dotmac-platform"
    assert document["version"] == "2026.11.1"
    assert document["environment"] == "development"
    [uptime] = document["checks"]["uptime"]
    assert uptime["observedUnit"] == "s" and uptime["observedValue"] > 0
    for name in ("shutdown", "database", "cache", "migrations", "circuit_breakers", "disk", "memory"):
        assert name in document["checks"], name


@pytest.mark.django_db
@pytest.mark.usefixtures("fresh_breakers")
def test_an_open_breaker_warns_but_keeps_the_pod_ready(client, settings):
    settings.OPS_API_TOKEN = TOKEN
    trip("provisioning-probe-test")
    response = client.get("/ready", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    document = body(response)
    assert document["status"] == "warn"
    [entry] = document["checks"]["circuit_breakers"]
    assert entry["status"] == "warn"
    assert entry["critical"] is False
    assert entry["observedValue"] == 1
    assert "provisioning-probe-test open" in entry["output"]


@pytest.mark.django_db
def test_fifty_concurrent_ready_requests_cost_one_round_trip_per_dependency(client, redis_server, settings):
    # Breaker overrides are re-read from the database on their own schedule, not per probe: keep
    # that schedule out of this measurement.
    settings.CIRCUIT_BREAKER_CONFIG_REFRESH_SECONDS = 3600
    assert client.get("/ready").status_code == 200  # warm up: migrations found applied, clients made
    reset_cached_results()

    queries = []

    def count_queries(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    def install_counter(sender, connection, **kwargs):
        connection.execute_wrappers.append(count_queries)

    counter = RedisCommandCounter(redis_server.port)
    before = counter.calls()
    connection_created.connect(install_counter)  # every check and request thread gets a new connection
    try:
        barrier = threading.Barrier(50)

        def probe(_):
            barrier.wait()
            return client.get("/ready").status_code

        with ThreadPoolExecutor(max_workers=50) as pool:
            statuses = list(pool.map(probe, range(50)))
    finally:
        connection_created.disconnect(install_counter)
    after = counter.calls()
    assert statuses == [200] * 50
    assert len(queries) == 1, queries
    assert "SELECT 1" in queries[0]
    commands = {name: after[name] - before.get(name, 0) for name in after if name != "info"}
    commands = {name: count for name, count in commands.items() if count}
    # The cache check's one PING; the breakers check's one scripted read of the shared breaker
    # state (Redis counts the commands a script runs too). Nothing ran once per request.
    assert commands.pop("ping") == 1
    assert commands.get("evalsha", 0) + commands.get("eval", 0) == 1, commands
    assert all(count == 1 for count in commands.values()), commands


# --- manage.py health ------------------------------------------------------------------------


def run_manage(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "health", *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.django_db
def test_health_command_prints_the_report_and_exits_0_when_ready(server_env):
    ready = run_manage(server_env, "--ready")
    assert ready.returncode == 0, ready.stderr
    document = json.loads(ready.stdout)
    assert document["checks"]["database"][0]["status"] == "pass"
    live = run_manage(server_env, "--live")
    assert live.returncode == 0
    assert json.loads(live.stdout) == {"status": "pass"}
    full = run_manage(server_env)
    assert full.returncode == 0
    assert json.loads(full.stdout)["serviceId"] == "dotmac-platform"


@pytest.mark.django_db
def test_health_command_exits_1_when_a_critical_check_fails(server_env, postgres_server):
    with psycopg.connect(postgres_server.url("postgres"), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS never_migrated")
        conn.execute("CREATE DATABASE never_migrated")
    env = {**server_env, "DATABASE_URL": postgres_server.url("never_migrated")}
    result = run_manage(env, "--ready")
    assert result.returncode == 1
    assert "unapplied migration" in json.loads(result.stdout)["checks"]["migrations"][0]["output"]


@pytest.mark.django_db
def test_health_command_exits_0_with_a_warning_when_redis_is_unreachable(server_env):
    env = {**server_env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    result = run_manage(env, "--ready")
    assert result.returncode == 0, result.stdout
    [cache_entry] = json.loads(result.stdout)["checks"]["cache"]
    assert cache_entry["status"] == "warn" and "unreachable" in cache_entry["output"]


# --- Real gunicorn servers -------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict
    seconds: float
    body: bytes


def http_get(
    port: int,
    path: str,
    *,
    host: str | None = None,
    token: str = "",
    timeout: float = 5.0,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> Answer:
    """One request (GET unless told) on a fresh connection, timed."""
    headers = {"Host": host or f"127.0.0.1:{port}", **(headers or {})}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    began = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers)
        response = conn.getresponse()
        content = response.read()
        return Answer(response.status, dict(response.getheaders()), time.monotonic() - began, content)
    finally:
        conn.close()


@contextlib.contextmanager
def gunicorn(env: dict, *, workers: int = 1) -> Iterator[int]:
    """A real gunicorn with the project's config on a free port; stopped (SIGTERM) at the end."""
    with tempfile.TemporaryDirectory(prefix="dotmac-probes-") as log_dir:
        server = GunicornServer(
            {
                **env,
                "WEB_CONCURRENCY": str(workers),
                "LOG_LEVEL": "warning",
                "OPS_API_TOKEN": TOKEN,  # so a failed assertion can show the detailed report
            },
            log_dir=Path(log_dir),
            stop_signal=signal.SIGTERM,
            stop_timeout=15,
        )
        server.start(timeout=30)
        try:
            yield server.port
        finally:
            server.stop()


def assert_live_answers(port: int) -> None:
    for _ in range(3):
        assert http_get(port, "/live", timeout=KUBELET_TIMEOUT).status == 200


@pytest.fixture
def own_redis_env(db, server_env) -> Iterator[tuple[RedisServer, dict]]:
    server = RedisServer().start()
    try:
        yield server, {**server_env, "REDIS_URL": server.url}
    finally:
        server.destroy()


def wait_for_check(port: int, check: str, expected: str, *, timeout: float, max_latency: float) -> float:
    """Poll ``/ready`` (always 200) until ``check`` reports ``expected``; the seconds it took."""
    began = time.monotonic()
    last: list[Answer] = []

    def reached() -> bool:
        answer = http_get(port, "/ready", token=TOKEN)
        last[:] = [answer]
        assert answer.seconds < max_latency, f"/ready took {answer.seconds:.2f} s: {answer.body!r}"
        assert answer.status == 200, answer.body
        return [entry["status"] for entry in json.loads(answer.body)["checks"][check]] == [expected]

    try:
        wait_until(reached, timeout=timeout, interval=0.1, message=f"{check} to report {expected}")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; last answer {last[0].status}: {last[0].body!r}") from None
    return time.monotonic() - began


@pytest.mark.servers
@pytest.mark.slow
def test_ready_stays_200_and_warns_while_redis_is_frozen_or_stopped(own_redis_env):
    redis_server, env = own_redis_env
    with gunicorn(env) as port:
        wait_for_check(port, "cache", "pass", timeout=5, max_latency=KUBELET_TIMEOUT)

        redis_server.freeze()  # SIGSTOP: accepts connections, never answers
        try:
            # A cached pass may be served for up to one TTL; then warn, and never a slow answer.
            wait_for_check(port, "cache", "warn", timeout=TTL + 1.5, max_latency=KUBELET_TIMEOUT)
            assert http_get(port, "/ready").seconds < KUBELET_TIMEOUT
            assert http_get(port, "/health").seconds < KUBELET_TIMEOUT
            assert_live_answers(port)
        finally:
            redis_server.thaw()
        # The cache's watcher pings every CACHE_RETRY_SECONDS (1 s); then one TTL of cached warn.
        wait_for_check(port, "cache", "pass", timeout=TTL + 2.5, max_latency=KUBELET_TIMEOUT)

        redis_server.stop()
        wait_for_check(port, "cache", "warn", timeout=TTL + 1.5, max_latency=KUBELET_TIMEOUT)
        assert_live_answers(port)
        redis_server.restart()
        wait_for_check(port, "cache", "pass", timeout=TTL + 2.5, max_latency=KUBELET_TIMEOUT)


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL of our own (the session one is never stopped)."""
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def own_postgres_env(own_postgres, server_env) -> dict:
    """server_env on our own PostgreSQL, migrated as a deployment would be."""
    env = {**server_env, "DATABASE_URL": own_postgres.url("postgres")}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=PROJECT_DIR,
        env=env,
        check=True,
        timeout=120,
    )
    return env


@pytest.mark.servers
@pytest.mark.slow
def test_ready_warns_and_pages_answer_503_fast_while_postgresql_is_stopped(own_postgres, own_postgres_env):
    # A session cookie makes the page load its session from the database.
    page = {"Cookie": "sessionid=not-a-session", "Accept": "text/html"}
    with gunicorn({**own_postgres_env, "DJANGO_DEBUG": "false"}) as port:
        wait_for_check(port, "database", "pass", timeout=5, max_latency=KUBELET_TIMEOUT)
        assert http_get(port, "/subscribers/", headers=page).status == 302  # to the login page
        own_postgres.stop()
        try:
            wait_for_check(port, "database", "warn", timeout=TTL + 1.5, max_latency=KUBELET_TIMEOUT)
            assert_live_answers(port)
            answer = http_get(port, "/subscribers/", headers=page)
            assert answer.status == 503, answer.body
            assert answer.headers["Retry-After"] == "5"
            assert b"temporarily unavailable" in answer.body
            assert answer.seconds < 10  # the connect timeout (3 s), never gunicorn's timeout (60 s)
            as_json = http_get(port, "/subscribers/", headers={**page, "Accept": "application/json"})
            assert as_json.status == 503
            assert "temporarily unavailable" in json.loads(as_json.body)["error"]
        finally:
            own_postgres.restart()
        wait_for_check(port, "database", "pass", timeout=TTL + 5, max_latency=KUBELET_TIMEOUT)
        assert http_get(port, "/subscribers/", headers=page).status == 302


@pytest.mark.servers
@pytest.mark.slow
def test_concurrent_ready_requests_cost_one_round_trip_per_dependency_per_process(
    own_postgres, own_postgres_env
):
    redis_server = RedisServer().start()
    # A TTL longer than the burst can take, so "within one TTL" holds on a slow machine too.
    env = {**own_postgres_env, "REDIS_URL": redis_server.url, "HEALTH_CACHE_TTL": "30"}
    statement_log = own_postgres.root / "log"
    marker = "statement: SET LOCAL statement_timeout"
    admin_url = own_postgres.url("postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET log_statement = 'all'")
        conn.execute("SELECT pg_reload_conf()")
    workers = 2
    try:
        with gunicorn(env, workers=workers) as port:  # waiting for /live ran no check
            counter = RedisCommandCounter(redis_server.port)
            logged_before = statement_log.read_text().count(marker)
            pings_before = counter.pings()
            barrier = threading.Barrier(50)

            def probe(_):
                barrier.wait()
                return http_get(port, "/ready", timeout=10).status

            with ThreadPoolExecutor(max_workers=50) as pool:
                statuses = list(pool.map(probe, range(50)))
            assert statuses == [200] * 50
            health_statements = statement_log.read_text().count(marker) - logged_before
            pings = counter.pings() - pings_before
            assert 1 <= health_statements <= workers
            assert 1 <= pings <= workers
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM RESET log_statement")
            conn.execute("SELECT pg_reload_conf()")
        redis_server.destroy()


@pytest.mark.servers
@pytest.mark.slow
def test_production_without_collected_static_files_is_not_ready_and_says_what_to_run(
    db, server_env, tmp_path
):
    env = {
        **server_env,
        "DJANGO_ENV": "production",
        "STATIC_ROOT": str(tmp_path / "never-collected"),
        "DJANGO_SECRET_KEY": "production-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "ALLOWED_HOSTS": "dotmac.example.com",
        "DRAIN_DELAY_SECONDS": "0",
        "OPS_API_TOKEN": TOKEN,
    }
    with gunicorn(env) as port:
        assert http_get(port, "/ready").status == 503
        answer = http_get(port, "/health", token=TOKEN)
        assert answer.status == 503
        [static] = json.loads(answer.body)["checks"]["static_files"]
        assert static["status"] == "fail"
        assert "run `manage.py collectstatic`" in static["output"]
        assert http_get(port, "/live").status == 200  # not a reason to restart the pod


@pytest.mark.servers
@pytest.mark.slow
def test_probes_answer_the_pod_ip_host_under_production_settings(db, server_env, collected_static):
    env = {
        **server_env,
        "DJANGO_ENV": "production",
        "STATIC_ROOT": str(collected_static),  # as the image has them
        "DJANGO_SECRET_KEY": "production-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "ALLOWED_HOSTS": "dotmac.example.com",
        "DRAIN_DELAY_SECONDS": "0",
    }
    with gunicorn(env) as port:
        for path in PROBES:
            answer = http_get(port, path, host="10.1.2.3:8000", token=TOKEN)
            assert answer.status == 200, (path, answer.status, answer.body)
            assert answer.headers["Content-Type"] == "application/health+json"
            assert answer.headers["Cache-Control"] == "no-store"
            head = http_get(port, path, host="10.1.2.3:8000", method="HEAD")
            assert (head.status, head.body) == (200, b"")
            assert http_get(port, path, host="10.1.2.3:8000", method="DELETE").status == 405
        # HEAD of /live: GET's headers, Content-Length included, and no body.
        live_get = http_get(port, "/live")
        live_head = http_get(port, "/live", method="HEAD")
        assert live_head.headers["Content-Length"] == str(len(live_get.body)) == "17"
        # Everything else still gets host validation and the SSL redirect.
        assert http_get(port, "/", host="10.1.2.3:8000").status == 400
        assert http_get(port, "/", host="dotmac.example.com").status == 301
