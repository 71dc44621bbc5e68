"""Drain state, cleanup tasks, exit summary and drain middleware, in one process (the real server:
test_shutdown.py)."""

from __future__ import annotations

import logging
import os
import threading
import time
import timeit

import pytest
from django.apps import apps as django_apps
from django.core.cache import cache
from django.db import connection

from apps.ops import shutdown
from apps.ops.shutdown import cleanup, state
from apps.ops.shutdown.cleanup import finish_process, log_requests_killed
from apps.ops.shutdown.middleware import CLOSE_CONNECTION_ENVIRON_KEY, DrainMiddleware


@pytest.fixture(autouse=True)
def _serving_again():
    state.reset()
    cleanup.restore_builtin_tasks()
    yield
    state.reset()
    cleanup.restore_builtin_tasks()


# --- Cleanup registry ---------------------------------------------------------------------------


def test_tasks_run_newest_first_and_the_builtin_ones_last():
    ran: list[str] = []
    shutdown.register_cleanup("flush-outbox", lambda: ran.append("flush-outbox"))
    shutdown.register_cleanup("stop-consumer", lambda: ran.append("stop-consumer"))

    results = cleanup.run_cleanups()
    assert ran == ["stop-consumer", "flush-outbox"]
    assert [(r.name, r.status) for r in results] == [
        (name, "ok") for name in ["stop-consumer", "flush-outbox", "database", "redis", "logs"]
    ]


def test_a_failing_task_is_logged_and_the_others_still_run(caplog):
    ran: list[str] = []
    shutdown.register_cleanup("after", lambda: ran.append("after"))

    def broken() -> None:
        raise RuntimeError("queue already closed")

    shutdown.register_cleanup("broken", broken)
    with caplog.at_level(logging.ERROR, logger="apps.ops.shutdown"):
        results = {r.name: r for r in cleanup.run_cleanups()}

    assert results["broken"].status == "error"
    assert results["broken"].error == "RuntimeError: queue already closed"
    assert ran == ["after"]
    assert "cleanup task broken failed: queue already closed" in caplog.text


def test_a_task_past_its_timeout_is_abandoned_and_the_next_one_starts(caplog):
    release = threading.Event()
    ran: list[str] = []
    shutdown.register_cleanup("after", lambda: ran.append("after"))
    shutdown.register_cleanup("stuck", lambda: release.wait(30), timeout=0.2)
    try:
        with caplog.at_level(logging.WARNING, logger="apps.ops.shutdown"):
            results = {r.name: r for r in cleanup.run_cleanups()}
        # The next task ran while the stuck one still waits for its release: it was abandoned.
        assert (results["stuck"].status, ran) == ("timeout", ["after"])
        assert results["stuck"].seconds >= 0.2
        assert "cleanup task stuck still running after 0.2 s; abandoned" in caplog.text
    finally:
        release.set()


def test_registering_a_name_again_replaces_the_task():
    ran: list[str] = []
    shutdown.register_cleanup("task", lambda: ran.append("first"))
    shutdown.register_cleanup("task", lambda: ran.append("second"), timeout=0.5)
    results = cleanup.run_cleanups()
    assert ran == ["second"]
    assert [r.name for r in results] == ["task", "database", "redis", "logs"]


@pytest.mark.parametrize(
    ("name", "func", "timeout", "error"),
    [
        ("", print, 1.0, ValueError),
        ("task", "not callable", 1.0, TypeError),
        ("task", print, 0, ValueError),
        ("task", print, -1, ValueError),
    ],
)
def test_register_cleanup_rejects_bad_arguments(name, func, timeout, error):
    with pytest.raises(error):
        shutdown.register_cleanup(name, func, timeout=timeout)


@pytest.mark.django_db(transaction=True)
def test_database_task_closes_the_connection_pool():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    pool = connection.pool
    assert pool is not None and not pool.closed

    cleanup.close_database_connections()

    assert pool.closed
    with connection.cursor() as cursor:  # a later query gets a new pool
        cursor.execute("SELECT 1")


def _connected_addresses(redis_server) -> set[str]:
    from redis import Redis

    with Redis(port=redis_server.port) as admin:
        return {client["addr"] for client in admin.client_list()}


def test_redis_task_disconnects_the_cache_pool(redis_server):
    cache.set("drain-test", "value")
    pool = cache.client.get_client(write=True).connection_pool
    ours = {f"127.0.0.1:{c._sock.getsockname()[1]}" for c in pool._available_connections if c._sock}
    assert ours and ours <= _connected_addresses(redis_server)

    cleanup.close_redis_connections()

    assert not ours & _connected_addresses(redis_server)
    assert cache.get("drain-test") == "value"  # the cache reconnects when used again


# --- Drain state -------------------------------------------------------------------------------


def test_announce_in_the_master_is_seen_at_once_by_a_forked_worker():
    state.create_shared_state()
    to_parent_read, to_parent_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the "worker": report what it sees before and after the master's announce
        try:
            os.write(to_parent_write, b"1" if shutdown.is_draining() else b"0")
            deadline = time.monotonic() + 10
            while not shutdown.is_draining() and time.monotonic() < deadline:
                time.sleep(0.001)
            os.write(to_parent_write, b"1" if shutdown.is_draining() else b"0")
        finally:
            os._exit(0)
    try:
        assert os.read(to_parent_read, 1) == b"0"
        state.announce()
        assert os.read(to_parent_read, 1) == b"1"
    finally:
        os.waitpid(pid, 0)
        os.close(to_parent_read)
        os.close(to_parent_write)
    assert state.seconds_stopping() is None  # announcing is not stopping: requests are still served


def test_is_draining_costs_less_than_a_marker_file_stat(tmp_path):
    state.create_shared_state()
    marker = tmp_path / "draining"
    calls = 200_000
    per_call = min(timeit.repeat(shutdown.is_draining, number=calls, repeat=3)) / calls
    stat_per_call = min(timeit.repeat(marker.exists, number=calls, repeat=3)) / calls
    print(
        f"\nis_draining(): {per_call * 1e9:.0f} ns per call; marker-file check: {stat_per_call * 1e9:.0f} ns"
    )
    assert per_call < stat_per_call


# --- Middleware --------------------------------------------------------------------------------


class _Closer:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def test_requests_are_served_normally_while_serving(client):
    closer = _Closer()
    response = client.get("/", **{CLOSE_CONNECTION_ENVIRON_KEY: closer})
    assert response.status_code == 200
    assert closer.calls == 0


@pytest.mark.django_db
def test_announce_fails_readiness_but_pages_are_served_and_close_their_connection(client):
    state.announce()
    closer = _Closer()
    assert client.get("/ready").status_code == 503
    assert client.get("/live").status_code == 200
    response = client.get("/", **{CLOSE_CONNECTION_ENVIRON_KEY: closer})
    assert response.status_code == 200
    assert closer.calls == 1


def test_a_stopping_process_refuses_requests_before_any_view_runs(client):
    state.begin_stopping()
    closer = _Closer()
    response = client.post(
        "/subscribers/new/",
        {"name": "x", "email": "x@example.net"},
        **{CLOSE_CONNECTION_ENVIRON_KEY: closer},
    )
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response["Cache-Control"] == "no-store"
    assert response["Content-Length"] == str(len(response.content))
    assert response.content == b"The server is restarting; retry the request.\n"
    assert closer.calls == 1


def test_a_json_client_gets_a_json_refusal(client):
    state.begin_stopping()
    response = client.get("/subscribers/", HTTP_ACCEPT="application/json")
    assert response.status_code == 503
    assert response.json() == {
        "error": "shutting_down",
        "detail": "The server is restarting; retry the request.",
    }


def test_the_api_answers_its_refusal_in_json_whatever_the_client_accepts(client):
    state.begin_stopping()
    response = client.post("/api/v1/circuit-breakers/reset-all")
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "shutting_down"


def test_killed_requests_are_logged_with_their_path(caplog):
    from django.http import HttpResponse
    from django.test import RequestFactory

    def view_killed_midway(request):
        state.begin_stopping()
        log_requests_killed("graceful timeout")
        return HttpResponse("never sent")

    middleware = DrainMiddleware(view_killed_midway)
    with caplog.at_level(logging.ERROR, logger="apps.ops.shutdown"):
        middleware(RequestFactory().post("/subscribers/7/activate/?token=secret"))
    [record] = [r for r in caplog.records if hasattr(r, "killed_reason")]
    assert (record.killed_reason, record.method, record.path) == (
        "graceful timeout",
        "POST",
        "/subscribers/7/activate/",
    )
    assert "secret" not in record.getMessage()  # paths only, never query strings


def test_the_summary_counts_what_was_in_flight_completed_and_refused(caplog):
    from django.http import HttpResponse
    from django.test import RequestFactory

    in_view = threading.Event()
    finish = threading.Event()

    def slow_view(request):
        in_view.set()
        finish.wait(10)
        return HttpResponse("done")

    middleware = DrainMiddleware(slow_view)
    factory = RequestFactory()
    in_flight = threading.Thread(target=middleware, args=(factory.get("/slow/"),))
    in_flight.start()
    assert in_view.wait(10)
    state.begin_stopping()
    assert [r.path for r in state.in_flight_requests()] == ["/slow/"]
    assert middleware(factory.get("/late/")).status_code == 503
    finish.set()
    in_flight.join(10)

    with caplog.at_level(logging.INFO, logger="apps.ops.shutdown"):
        results = finish_process()
    [summary] = [r for r in caplog.records if getattr(r, "drained", None) is True]
    assert (summary.in_flight_at_stop, summary.completed, summary.refused, summary.still_running) == (
        1,
        1,
        1,
        0,
    )
    assert summary.pid == os.getpid()
    assert summary.cleanup == {r.name: r.status for r in results}


def test_the_ops_redis_clients_close_with_the_worker(redis_server):
    import redis

    from apps.ops.breakers import all_statuses
    from apps.ops.health.checks import CacheCheck

    django_apps.get_app_config("ops").ready()  # the fixture above left only the built-in tasks
    all_statuses()  # opens the breakers' client
    CacheCheck().run()  # opens the health check's private PING client
    admin = redis.Redis(port=redis_server.port, client_name="test-admin")
    others = {c["addr"]: c["name"] for c in admin.client_list() if c["name"] != "test-admin"}
    assert "dotmac-breakers" in others.values()
    assert len(others) >= 2

    results = cleanup.run_cleanups()

    assert {"breakers-store", "cache-redis-ping"} <= {result.name for result in results}
    assert all(result.status == "ok" for result in results)
    remaining = {c["addr"] for c in admin.client_list() if c["name"] != "test-admin"}
    assert not remaining & set(others)
