"""Circuit breakers: state machine, shared state across processes, Redis outages, concurrency, logs.

Real Redis throughout (the session server, or one started by the test when it stops or freezes it).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time

import pybreaker
import pytest
import redis
from django.core.checks import run_checks
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from prometheus_client import REGISTRY

from apps.ops import breakers, http
from apps.ops.breakers import CircuitOpenError
from apps.ops.breakers.database import WAIT_SECONDS
from apps.ops.breakers.redis_store import NAMES_KEY, state_keys
from apps.ops.breakers.registry import BreakerRegistry
from apps.ops.models import BreakerConfigOverride, BreakerResetAudit, BreakerState
from tests.ops.breaker_support import PROJECT_DIR, configure, run_in_other_process
from tests.servers import subprocess_env, wait_until
from tests.upstream import upstream_fixture  # noqa: F401

pytestmark = pytest.mark.usefixtures("fresh_breakers")


class Boom(Exception):
    pass


def fail() -> None:
    raise Boom("upstream down")


def succeed() -> str:
    return "ok"


def fail_times(breaker, count: int) -> None:
    for _ in range(count):
        with pytest.raises(Boom):
            breaker.call(fail)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def raw_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2)


# --- state machine -------------------------------------------------------------------------------


def test_defaults_are_the_production_spec(settings):
    breaker = breakers.get_breaker("defaults-check")
    assert (breaker.fail_max, breaker.reset_timeout, breaker.success_threshold, breaker.request_timeout) == (
        5,
        60.0,
        3,
        30.0,
    )


def test_five_consecutive_failures_open_the_breaker_and_then_calls_fail_fast(settings):
    breaker = breakers.get_breaker("five-failures")
    fail_times(breaker, 4)
    assert breaker.status().state == "closed"
    with pytest.raises(Boom):  # the fifth call reaches the upstream and reports its own error
        breaker.call(fail)
    assert breaker.status().state == "open"

    called = []
    with pytest.raises(CircuitOpenError) as rejected:
        breaker.call(lambda: called.append(1))
    assert called == []  # never attempted
    assert rejected.value.breaker == "five-failures"
    assert 0 < rejected.value.retry_after <= 60


def test_a_success_resets_the_count_of_consecutive_failures(settings):
    breaker = breakers.get_breaker("consecutive")
    fail_times(breaker, 4)
    assert breaker.call(succeed) == "ok"
    fail_times(breaker, 4)
    assert breaker.status().state == "closed"
    assert breaker.status().failure_count == 4


def open_and_wait_for_trial(breaker) -> None:
    """Open the breaker, check it rejects, then wait (polling) until a trial call succeeds."""
    fail_times(breaker, breaker.fail_max)
    with pytest.raises(CircuitOpenError):
        breaker.call(succeed)

    def trial_admitted() -> bool:
        try:
            breaker.call(succeed)
        except CircuitOpenError:
            return False
        return True

    wait_until(trial_admitted, timeout=breaker.reset_timeout + 3, message="half-open trial call")


def test_after_the_recovery_timeout_it_half_opens_and_three_successes_close_it(settings):
    # Redis keeps opened_at in whole seconds: 2 s guarantees at least 1 s of "open" to observe.
    configure(settings, "recovery", fail_max=2, reset_timeout=2)
    breaker = breakers.get_breaker("recovery")
    open_and_wait_for_trial(breaker)  # first successful trial call
    assert breaker.status().state == "half-open"
    breaker.call(succeed)
    assert breaker.status().state == "half-open"
    breaker.call(succeed)  # third consecutive success
    status = breaker.status()
    assert (status.state, status.failure_count, status.opened_at) == ("closed", 0, None)


def test_one_failure_in_half_open_reopens_it(settings):
    configure(settings, "reopen", fail_max=2, reset_timeout=2)
    breaker = breakers.get_breaker("reopen")
    open_and_wait_for_trial(breaker)
    assert breaker.status().state == "half-open"
    with pytest.raises(Boom):
        breaker.call(fail)
    assert breaker.status().state == "open"
    with pytest.raises(CircuitOpenError):
        breaker.call(succeed)


def test_excluded_errors_do_not_count_as_failures(settings):
    breaker = breakers.get_breaker("excluded")
    breaker.add_excluded_exception(KeyError)
    for _ in range(10):
        with pytest.raises(KeyError):
            breaker.call(lambda: {}["missing"])
    assert breaker.status().state == "closed"


def test_calling_block_is_the_protected_call(settings):
    configure(settings, "block", fail_max=1)
    breaker = breakers.get_breaker("block")
    with breaker.calling():
        pass
    with pytest.raises(Boom), breaker.calling():
        raise Boom("inside the block")
    with pytest.raises(CircuitOpenError), breaker.calling():
        pytest.fail("an open breaker must not run the block")


# --- configuration -----------------------------------------------------------------------------------


def test_settings_override_the_defaults_per_breaker(settings):
    configure(settings, "tuned", fail_max=2, reset_timeout=9, success_threshold=1, request_timeout=4)
    status = breakers.get_breaker("tuned").status()
    config = (status.fail_max, status.reset_timeout, status.success_threshold, status.request_timeout)
    assert config == (2, 9, 1, 4)
    assert breakers.get_breaker("untuned").fail_max == 5


@pytest.mark.django_db
def test_admin_override_applies_to_a_live_breaker_without_restart(settings):
    configure(settings, "live-config", fail_max=2)
    breaker = breakers.get_breaker("live-config")
    assert breaker.fail_max == 2
    override = BreakerConfigOverride.objects.create(name="live-config", fail_max=7, reset_timeout=11)
    breaker = breakers.get_breaker("live-config")
    assert (breaker.fail_max, breaker.reset_timeout, breaker.success_threshold) == (7, 11, 3)
    override.delete()
    assert breakers.get_breaker("live-config").fail_max == 2


@pytest.mark.django_db(transaction=True)  # the refresh reads in its own thread and connection
def test_other_processes_pick_up_an_admin_override_within_the_refresh_interval(settings):
    settings.CIRCUIT_BREAKER_CONFIG_REFRESH_SECONDS = 0.2
    assert breakers.get_breaker("refreshed").fail_max == 5
    # A row written by "another process": bypass save() so this process's cache is not cleared.
    BreakerConfigOverride.objects.bulk_create([BreakerConfigOverride(name="refreshed", fail_max=9)])
    wait_until(lambda: breakers.get_breaker("refreshed").fail_max == 9, timeout=3, message="override applied")
    assert breakers.breaker_status("refreshed").fail_max == 9


def test_invalid_settings_are_reported_by_the_system_check(settings):
    settings.CIRCUIT_BREAKERS = {
        "ok": {"fail_max": 3},
        "Bad Name": {},
        "typo": {"fail_maxx": 1, "reset_timeout": -1},
    }
    messages = [error.msg for error in run_checks() if error.id == "ops.E001"]
    assert any("'Bad Name'" in message for message in messages)
    assert any("fail_maxx" in message for message in messages)
    assert any("reset_timeout must be > 0" in message for message in messages)
    assert not any("'ok'" in message for message in messages)


def test_an_invalid_setting_keeps_the_default_at_run_time(settings, caplog):
    configure(settings, "half-typo", fail_max=0, reset_timeout=5)
    breaker = breakers.get_breaker("half-typo")
    assert (breaker.fail_max, breaker.reset_timeout) == (5, 5.0)
    assert "ignoring settings setting: fail_max must be a whole number" in caplog.text


@pytest.mark.parametrize("name", ["", "a/b", "Upper", "é", "x" * 64, "-leading", "sp ace", None])
def test_invalid_names_are_refused(settings, name):
    with pytest.raises(ValueError):
        breakers.get_breaker(name)
    assert not breakers.is_known(name)


# --- shared state --------------------------------------------------------------------------------------


def test_state_lives_in_redis_under_pybreaker_keys(settings):
    configure(settings, "in-redis", fail_max=2)
    breaker = breakers.get_breaker("in-redis")
    fail_times(breaker, 2)
    client = raw_client(settings.REDIS_URL)
    state, failures, _, opened_at = client.mget(state_keys("in-redis"))
    assert (state, failures) == (b"open", b"2")
    assert abs(int(opened_at) - time.time()) < 5
    assert client.sismember(NAMES_KEY, "in-redis")
    assert breaker.status().shared is True


@pytest.mark.django_db
def test_two_processes_share_the_breaker_through_redis(settings, server_env, upstream, client):
    """Failures in another process open the breaker here; a reset through the REST API here is seen there."""
    server_env["CIRCUIT_BREAKERS"] = '{"shared-upstream": {"fail_max": 3, "reset_timeout": 60}}'
    configure(settings, "shared-upstream", fail_max=3, reset_timeout=60)
    upstream.status = 503
    tripped = run_in_other_process(
        server_env,
        f"""
        from apps.ops import breakers, http
        errors = []
        for _ in range(3):
            try:
                http.request("GET", "{upstream.url}/ping", breaker="shared-upstream")
            except http.OutboundError as exc:
                errors.append(type(exc).__name__)
        result = {{"errors": errors, "state": breakers.get_breaker("shared-upstream").status().state}}
        """,
    )
    assert tripped == {"errors": ["UpstreamServerError"] * 3, "state": "open"}
    assert upstream.request_count == 3

    # This process never called it, yet sees it open and fails fast without a request.
    assert [s.state for s in breakers.all_statuses() if s.name == "shared-upstream"] == ["open"]
    with pytest.raises(http.CircuitOpenError):
        http.request("GET", f"{upstream.url}/ping", breaker="shared-upstream")
    assert upstream.request_count == 3

    # A reset through the REST API here is seen by another process at once.
    settings.OPS_API_TOKEN = "two-process-token"
    response = client.post(
        "/api/v1/circuit-breakers/shared-upstream/reset", HTTP_AUTHORIZATION="Bearer two-process-token"
    )
    assert (response.status_code, response.json()["state"]) == (200, "closed")
    seen = run_in_other_process(
        server_env,
        """
        from apps.ops import breakers
        result = [s.as_dict() for s in breakers.all_statuses() if s.name == "shared-upstream"]
        """,
    )
    assert [(s["state"], s["failure_count"], s["shared"]) for s in seen] == [("closed", 0, True)]


def test_all_statuses_reads_every_breaker_in_one_round_trip(settings, server_env):
    for name in ("batch-a", "batch-b"):
        breakers.get_breaker(name).call(succeed)
    # One more, used only by another process: this one still reads it in the same round trip.
    run_in_other_process(
        server_env, "from apps.ops import breakers\nbreakers.get_breaker('batch-c').call(int)\nresult = 1"
    )
    client = raw_client(settings.REDIS_URL)

    def calls() -> dict[str, int]:
        stats = client.info("commandstats")
        return {
            cmd: int(stats.get(f"cmdstat_{cmd}", {}).get("calls", 0))
            for cmd in ("evalsha", "get", "smembers")
        }

    breakers.all_statuses()  # loads the script once
    before = calls()
    statuses = breakers.all_statuses()
    after = calls()
    by_name = {s.name: s for s in statuses}
    assert {"batch-a", "batch-b", "batch-c"} <= set(by_name)
    assert all(
        by_name[name].shared and by_name[name].state == "closed" for name in ("batch-a", "batch-b", "batch-c")
    )
    # One client command (the script); the reads happen inside Redis.
    assert {cmd: after[cmd] - before[cmd] for cmd in after} == {"evalsha": 1, "get": 0, "smembers": 1}


def test_garbage_in_redis_never_breaks_a_call_or_a_status_read(settings, caplog):
    breaker = breakers.get_breaker("garbled")
    breaker.call(succeed)
    raw_client(settings.REDIS_URL).set(state_keys("garbled")[1], "not-a-number")
    with pytest.raises(Boom):  # the call's own error, nothing else
        breaker.call(fail)
    assert breaker.call(succeed) == "ok"  # and the success repaired the counter
    [status] = [s for s in breakers.all_statuses() if s.name == "garbled"]
    assert (status.state, status.failure_count, status.shared) == ("closed", 0, True)  # Redis is not "down"
    assert "shared state refused: ResponseError" in caplog.text


def test_unknown_names_are_never_created_by_lookups(settings):
    assert breakers.is_known("never-used") is False
    assert breakers.breaker_status("never-used") is None
    assert "never-used" not in {s.name for s in breakers.all_statuses()}
    assert not raw_client(settings.REDIS_URL).sismember(NAMES_KEY, "never-used")


@pytest.mark.django_db
def test_without_redis_state_lives_in_the_database_and_says_so(database_breakers):
    breaker = breakers.get_breaker("in-database")
    fail_times(breaker, 5)
    row = BreakerState.objects.get(name="in-database")
    assert (row.state, row.failure_count, row.opened_at is not None) == ("open", 5, True)
    [status] = [s for s in breakers.all_statuses() if s.name == "in-database"]
    assert (status.state, status.failure_count, status.shared) == ("open", 5, True)


@pytest.mark.django_db
def test_a_locked_database_costs_a_call_at_most_the_wait_then_breakers_run_locally(database_breakers):
    configure(database_breakers, "db-locked", fail_max=3)
    breaker = breakers.get_breaker("db-locked")
    breaker.call(succeed)
    locked, release = threading.Event(), threading.Event()

    def hold_row_lock() -> None:  # another connection, as another worker's transaction would
        with transaction.atomic():
            BreakerState.objects.select_for_update().get(name="db-locked")
            locked.set()
            release.wait(10)
        connection.close()

    holder = threading.Thread(target=hold_row_lock)
    holder.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        fail_times(breaker, 3)  # the first write waits, then the store counts as down
        took = time.monotonic() - started
        status = breaker.status()
    finally:
        release.set()
        holder.join(10)
    assert took < 2 * WAIT_SECONDS
    assert (status.state, status.shared) == ("open", False)  # opened all the same, locally


# --- Redis outages ---------------------------------------------------------------------------------------


@pytest.mark.servers
def test_redis_stopped_mid_test_breakers_keep_working_locally_then_share_again(settings, own_redis, caplog):
    configure(settings, "outage", fail_max=3)
    breaker = breakers.get_breaker("outage")
    fail_times(breaker, 2)
    assert breaker.status().shared is True

    own_redis.stop()
    # No exception of ours escapes: the calls run, failures are still counted, the breaker opens.
    assert breaker.call(succeed) == "ok"
    fail_times(breaker, 3)
    with pytest.raises(CircuitOpenError):
        breaker.call(succeed)
    [status] = [s for s in breakers.all_statuses() if s.name == "outage"]
    assert (status.state, status.failure_count, status.shared) == ("open", 3, False)
    assert "Redis at 127.0.0.1:" in caplog.text and "local state" in caplog.text

    own_redis.restart()  # empty: Redis came back without the old state
    wait_until(lambda: breaker.status().shared, timeout=10, message="shared state again")
    # Shared again: Redis's state wins, and what happens now is visible to any other client.
    assert breaker.status().state == "closed"
    fail_times(breaker, 3)
    assert raw_client(own_redis.url).get(state_keys("outage")[0]) == b"open"
    assert raw_client(own_redis.url).sismember(NAMES_KEY, "outage")
    assert "reachable again" in caplog.text


@pytest.mark.servers
def test_a_frozen_redis_costs_a_call_at_most_the_socket_timeout(settings, own_redis):
    # Deadlines, not measurements: each is well below what one more wait on Redis would cost.
    timeout = settings.REDIS_SOCKET_TIMEOUT = 1.0
    breaker = breakers.get_breaker("frozen")
    breaker.call(succeed)
    own_redis.freeze()
    try:
        started = time.monotonic()
        assert breaker.call(succeed) == "ok"
        first = time.monotonic() - started
        started = time.monotonic()
        for _ in range(20):  # backing off: no Redis wait at all
            breaker.call(succeed)
        following = time.monotonic() - started
        statuses_started = time.monotonic()
        assert [s.shared for s in breakers.all_statuses() if s.name == "frozen"] == [False]
        statuses_took = time.monotonic() - statuses_started
    finally:
        own_redis.thaw()
    assert first < 2 * timeout  # one wait, no retry
    assert following < timeout  # twenty calls, not one of them waited
    assert statuses_took < 2 * timeout


# --- concurrency ------------------------------------------------------------------------------------------


def calls_inside_at_once(call_through, *, threads: int = 8, timeout: float = 10) -> list[Exception]:
    """Run ``call_through(protected)`` in ``threads`` threads, where ``protected`` returns only once
    every thread is inside its own (BrokenBarrierError after ``timeout`` s); the errors raised."""
    inside = threading.Barrier(threads, timeout=timeout)
    errors: list[Exception] = []

    def worker() -> None:
        try:
            call_through(inside.wait)
        except Exception as exc:
            errors.append(exc)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return errors


def test_concurrent_calls_through_one_closed_breaker_are_not_serialised(settings):
    breaker = breakers.get_breaker("parallel")
    assert calls_inside_at_once(breaker.call) == []  # all eight were inside the breaker together
    assert breaker.status().state == "closed"


@pytest.mark.slow
def test_plain_pybreaker_serialises_the_same_calls_for_comparison():
    """What the registry avoids: pybreaker holds its lock around the call, one call at a time."""
    plain = pybreaker.CircuitBreaker(fail_max=100, reset_timeout=60)
    errors = calls_inside_at_once(plain.call, timeout=1)
    assert errors and all(isinstance(error, threading.BrokenBarrierError) for error in errors)


# --- listeners, logs, metrics ---------------------------------------------------------------------------


class ExplodingListener(pybreaker.CircuitBreakerListener):
    def before_call(self, cb, func, *args, **kwargs):
        raise RuntimeError("listener bug")

    def state_change(self, cb, old_state, new_state):
        raise RuntimeError("listener bug")

    def failure(self, cb, exc):
        raise RuntimeError("listener bug")

    def success(self, cb):
        raise RuntimeError("listener bug")


def test_a_failing_listener_never_breaks_a_call(settings, caplog):
    configure(settings, "listened", fail_max=2)
    breaker = breakers.get_breaker("listened")
    listener = ExplodingListener()
    breaker.add_listener(listener)
    assert breaker.call(succeed) == "ok"
    fail_times(breaker, 2)  # the original error, not the listener's
    assert breaker.status().state == "open"
    assert "listener ExplodingListener failed in state_change" in caplog.text
    assert "circuit breaker listened: closed -> open" in caplog.text  # the other listeners still ran
    breaker.remove_listener(listener)


def transition_lines(caplog, name: str) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if getattr(record, "breaker", None) == name and getattr(record, "new_state", None)
    ]


def test_each_transition_is_logged_once_with_name_states_and_reason(settings, caplog):
    configure(settings, "logged", fail_max=2, reset_timeout=2)
    caplog.set_level(logging.INFO, logger="apps.ops.breakers")
    breaker = breakers.get_breaker("logged")
    open_and_wait_for_trial(breaker)
    breaker.call(succeed)
    breaker.call(succeed)
    lines = [(r.levelname, r.old_state, r.new_state, r.reason) for r in transition_lines(caplog, "logged")]
    assert lines == [
        ("WARNING", "closed", "open", "2 consecutive failures, last Boom: upstream down"),
        ("INFO", "open", "half-open", "recovery timeout of 2 s elapsed"),
        ("INFO", "half-open", "closed", "3 consecutive successful trial calls"),
    ]


def test_a_transition_made_by_another_process_is_not_logged_again(settings, caplog):
    """Two registries on one Redis stand for two workers: only the one that trips it logs."""
    configure(settings, "once", fail_max=2)
    here, there = BreakerRegistry().get("once"), BreakerRegistry().get("once")
    fail_times(here, 2)
    with pytest.raises(CircuitOpenError):
        there.call(succeed)  # notices the open state
    there.open()  # a late trip attempt by the other worker: already open, nothing to report
    assert [r.new_state for r in transition_lines(caplog, "once")] == ["open"]


def test_calls_and_transitions_are_counted_in_metrics(settings):
    configure(settings, "counted", fail_max=2)
    labels = {"breaker": "counted"}
    before = {
        outcome: metric("circuit_breaker_calls_total", outcome=outcome, **labels)
        for outcome in ("success", "failure", "rejected")
    }
    opened_before = metric("circuit_breaker_transitions_total", to="open", **labels)
    breaker = breakers.get_breaker("counted")
    breaker.call(succeed)
    fail_times(breaker, 2)
    with pytest.raises(CircuitOpenError):
        breaker.call(succeed)
    deltas = {
        outcome: metric("circuit_breaker_calls_total", outcome=outcome, **labels) - before[outcome]
        for outcome in before
    }
    assert deltas == {"success": 1, "failure": 2, "rejected": 1}
    assert metric("circuit_breaker_transitions_total", to="open", **labels) - opened_before == 1


# --- the breakers command -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_breakers_command_lists_resets_and_audits(settings, capsys):
    configure(settings, "cli-one", fail_max=1)
    configure(settings, "cli-two")
    with pytest.raises(Boom):
        breakers.get_breaker("cli-one").call(fail)

    call_command("breakers", "list")
    listing = capsys.readouterr().out
    assert "cli-one" in listing and "open" in listing and "cli-two" in listing

    call_command("breakers", "reset", "cli-one")
    assert breakers.breaker_status("cli-one").state == "closed"
    audit = BreakerResetAudit.objects.get(breaker="cli-one")
    assert (audit.via, audit.state_before, audit.failure_count_before) == ("cli", "open", 1)
    assert audit.actor.startswith("cli:")

    call_command("breakers", "reset-all")
    assert "reset 2 circuit breakers" in capsys.readouterr().out
    assert BreakerResetAudit.objects.filter(via="cli").count() == 3


@pytest.mark.django_db
def test_breakers_command_refuses_an_unknown_name(settings):
    with pytest.raises(CommandError, match="unknown circuit breaker 'nope'"):
        call_command("breakers", "reset", "nope")
    assert breakers.breaker_status("nope") is None


# --- without Redis: one state per server, through the database ------------------------------------------


@pytest.fixture(scope="module")
def make_run_env(tmp_path_factory) -> dict[str, str]:
    """What `make run` serves: SQLite in DATA_DIR, no REDIS_URL, provisioning configured; migrated."""
    data_dir = tmp_path_factory.mktemp("make-run-data")
    env = subprocess_env(
        DATA_DIR=str(data_dir),
        DJANGO_ENV="development",
        PROVISIONING_API_URL="http://127.0.0.1:9/provisioning",
        CIRCUIT_BREAKERS='{"make-run-upstream": {"fail_max": 2}}',
        OPS_API_TOKEN="make-run-token",
        METRICS_BEARER_TOKEN="make-run-token",
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], env=env, cwd=PROJECT_DIR, check=True
    )
    return env


@pytest.mark.slow
def test_without_redis_two_processes_see_one_state_through_the_database(make_run_env):
    """Failures in one process open the breaker in another; a reset there closes it in the first."""
    tripped = run_in_other_process(
        make_run_env,
        """
        from apps.ops import breakers
        breaker = breakers.get_breaker("make-run-upstream")
        for _ in range(2):
            try:
                breaker.call(lambda: 1 / 0)
            except ZeroDivisionError:
                pass
        result = breaker.status().as_dict()
        """,
    )
    assert (tripped["state"], tripped["failure_count"], tripped["shared"]) == ("open", 2, True)
    reset = run_in_other_process(
        make_run_env,
        """
        from django.core.management import call_command
        from apps.ops import breakers
        seen = breakers.breaker_status("make-run-upstream").as_dict()
        try:
            breakers.get_breaker("make-run-upstream").call(int)
            rejected = False
        except breakers.CircuitOpenError:
            rejected = True
        call_command("breakers", "reset", "make-run-upstream")
        result = {"seen": seen, "rejected": rejected}
        """,
    )
    assert (reset["seen"]["state"], reset["seen"]["shared"], reset["rejected"]) == ("open", True, True)
    after = run_in_other_process(
        make_run_env,
        """
        from apps.ops import breakers
        result = breakers.breaker_status("make-run-upstream").as_dict()
        """,
    )
    assert (after["state"], after["failure_count"], after["shared"]) == ("closed", 0, True)


@pytest.mark.slow
def test_a_configured_integration_breaker_is_listed_exported_and_resettable_before_any_call(make_run_env):
    """PROVISIONING_API_URL set: breaker ``provisioning`` is there (closed) before anything called it."""
    seen = run_in_other_process(
        make_run_env,
        """
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.test import Client
        client = Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION="Bearer make-run-token")
        api = client.get("/api/v1/circuit-breakers/status").json()
        metrics = client.get("/metrics").content.decode()
        staff = Client(HTTP_HOST="localhost")
        staff.force_login(get_user_model().objects.create_superuser("ops", "ops@example.net", "x"))
        admin = staff.get("/admin/ops/circuitbreaker/").content.decode()
        call_command("breakers", "reset", "provisioning")
        result = {
            "api": [[b["name"], b["state"]] for b in api["breakers"]],
            "metrics": [line for line in metrics.splitlines() if line.startswith("circuit_breaker_state{")],
            "admin_lists_it": 'value="provisioning"' in admin,
        }
        """,
    )
    assert ["provisioning", "closed"] in seen["api"]
    assert 'circuit_breaker_state{breaker="provisioning"} 0.0' in seen["metrics"]
    assert seen["admin_lists_it"]
