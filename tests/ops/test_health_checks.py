"""Health checks and their runner: deadline, single flight, cache, built-in checks on real servers."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.db.migrations.recorder import MigrationRecorder

from apps.ops.breakers import breaker_status, get_breaker
from apps.ops.health import CheckFailed, CheckWarning, HealthCheck, Observation, Status
from apps.ops.health.checks import (
    CacheCheck,
    CircuitBreakersCheck,
    DatabaseCheck,
    DiskCheck,
    MemoryCheck,
    MigrationsCheck,
    ShutdownCheck,
    StaticFilesCheck,
)
from apps.ops.health.config import configured_checks, readiness_checks
from apps.ops.health.runner import run_checks
from apps.ops.metrics.definitions import HEALTH_CHECK_DURATION, HEALTH_CHECK_STATUS
from apps.ops.shutdown import state as shutdown
from tests.ops.breaker_support import trip
from tests.ops.health_support import RedisCommandCounter, fresh_health_state  # noqa: F401  (autouse)
from tests.servers import wait_until


class GatedCheck(HealthCheck):
    """Blocks until its gate opens; counts how many runs started."""

    def __init__(self, name: str, gate: threading.Event) -> None:
        super().__init__()
        self.name = name
        self.gate = gate
        self.starts = 0

    def run(self) -> Observation | None:
        self.starts += 1
        if not self.gate.wait(30):
            raise CheckFailed("gate never opened")
        return None


class RaisingCheck(HealthCheck):
    def __init__(self, name: str, exc: BaseException, critical: bool = True) -> None:
        super().__init__()
        self.name = name
        self.exc = exc
        self.critical = critical

    def run(self) -> Observation | None:
        raise self.exc


@pytest.fixture
def gate():
    event = threading.Event()
    yield event
    event.set()  # let any thread still blocked finish


# --- Runner ----------------------------------------------------------------------------------


def test_runner_answers_within_the_deadline_when_a_check_hangs(settings, gate):
    settings.HEALTH_CHECK_DEADLINE = 0.3
    hung = GatedCheck("hung", gate)
    began = time.monotonic()
    report = run_checks([hung])
    # Waited for the deadline, not for the check (whose gate stays closed for 30 s).
    assert 0.25 <= time.monotonic() - began < 10
    assert hung.starts == 1
    assert report.status is Status.FAIL
    assert report.http_status == 503
    [result] = report.results
    assert result.status is Status.FAIL
    assert "no answer within 0.3 s" in result.output


class SharedDependencyCheck(RaisingCheck):
    shared_dependency = True


def test_a_shared_dependency_that_fails_is_reported_as_warn_and_keeps_the_answer_200():
    report = run_checks([SharedDependencyCheck("db", CheckFailed("refused"), critical=True)])
    [result] = report.results
    assert result.status is Status.WARN
    assert result.output == "refused"
    assert report.status is Status.WARN
    assert report.http_status == 200


def test_a_shared_dependency_that_does_not_answer_in_time_is_reported_as_warn(settings, gate):
    settings.HEALTH_CHECK_DEADLINE = 0.3

    class HungShared(GatedCheck):
        shared_dependency = True

    report = run_checks([HungShared("hung", gate)])
    [result] = report.results
    assert result.status is Status.WARN
    assert "no answer within 0.3 s" in result.output
    assert report.http_status == 200


def test_a_hung_check_is_not_started_again_while_its_run_is_in_flight(settings, gate):
    settings.HEALTH_CACHE_TTL = 0  # every call looks for a fresh result
    hung = GatedCheck("hung", gate)
    hung.timeout = 0.2
    run_checks([hung])
    threads_before = threading.active_count()
    settings.HEALTH_CHECK_DEADLINE = 30.0  # waiting for the run again would take that long
    began = time.monotonic()
    for _ in range(20):
        report = run_checks([hung])
        assert report.status is Status.FAIL
    # The run in flight already outlived its timeout: reported at once, not waited for again.
    assert time.monotonic() - began < 10
    assert hung.starts == 1
    assert threading.active_count() == threads_before

    gate.set()  # the dependency answers again: the run returns, the next call starts a new one
    wait_until(lambda: run_checks([hung]).status is Status.PASS, timeout=5, message="check to pass")
    assert hung.starts == 2


def test_a_check_timeout_shorter_than_the_deadline_applies(settings, gate):
    settings.HEALTH_CHECK_DEADLINE = 30.0
    hung = GatedCheck("hung", gate)
    hung.timeout = 0.2
    began = time.monotonic()
    [result] = run_checks([hung]).results
    assert time.monotonic() - began < 10
    assert "no answer within 0.2 s" in result.output


def test_concurrent_callers_share_one_run_and_its_cached_result(settings, gate):
    settings.HEALTH_CHECK_DEADLINE = 5.0
    check = GatedCheck("shared", gate)
    reports = []
    callers = [threading.Thread(target=lambda: reports.append(run_checks([check]))) for _ in range(50)]
    for caller in callers:
        caller.start()
    wait_until(lambda: check.starts == 1, timeout=5, message="the single run to start")
    gate.set()
    for caller in callers:
        caller.join(10)
    assert len(reports) == 50
    assert all(report.status is Status.PASS for report in reports)
    assert check.starts == 1
    run_checks([check])  # within the TTL: the cached result, no new run
    assert check.starts == 1


def test_a_result_is_reused_for_the_ttl_and_refreshed_after_it(settings, gate):
    settings.HEALTH_CACHE_TTL = 0.3
    gate.set()
    check = GatedCheck("ttl", gate)
    first = run_checks([check]).results[0]
    assert run_checks([check]).results[0] is first
    assert check.starts == 1
    wait_until(lambda: run_checks([check]).results[0] is not first, timeout=3, message="a fresh result")
    assert check.starts == 2


def test_checks_run_concurrently(settings):
    settings.HEALTH_CHECK_DEADLINE = 2.0
    barrier = threading.Barrier(3, timeout=1.5)

    class MeetingCheck(HealthCheck):
        def run(self) -> Observation | None:
            barrier.wait()  # passes only when all three run at the same time
            return None

    checks = []
    for index in range(3):
        check = MeetingCheck()
        check.name = f"meeting-{index}"
        checks.append(check)
    report = run_checks(checks)
    assert [result.status for result in report.results] == [Status.PASS] * 3


class ThreadRecordingCheck(HealthCheck):
    """Passes, and remembers which thread ran it."""

    def __init__(self, name: str, *, blocking: bool = True) -> None:
        super().__init__()
        self.name = name
        self.blocking = blocking
        self.threads: list[threading.Thread] = []

    def run(self) -> Observation | None:
        self.threads.append(threading.current_thread())
        return None


def test_check_threads_are_reused_from_run_to_run(settings):
    settings.HEALTH_CACHE_TTL = 0  # every call runs the checks
    checks = [ThreadRecordingCheck(f"reused-{index}") for index in range(3)]
    # Earlier tests may have left check threads, idle or still held by a hung check.
    existing = [thread for thread in threading.enumerate() if thread.name.startswith("health-check-")]
    for _ in range(30):
        assert run_checks(checks).status is Status.PASS
    ran_in = {thread for check in checks for thread in check.threads}
    assert threading.current_thread() not in ran_in
    # 90 runs of a check, in the threads that existed or no more than three new ones (three checks
    # ran at once at most); all still there for the next run.
    assert len(ran_in) <= max(len(existing), 3)
    assert all(thread.is_alive() and thread.daemon for thread in ran_in)


def test_checks_that_cannot_block_run_in_the_callers_thread(settings):
    settings.HEALTH_CACHE_TTL = 0
    local = ThreadRecordingCheck("local", blocking=False)
    remote = ThreadRecordingCheck("remote")
    assert run_checks([remote, local]).status is Status.PASS
    assert local.threads == [threading.current_thread()]
    assert remote.threads[0] is not threading.current_thread()


def test_a_hung_check_keeps_its_thread_and_delays_no_other_check(settings, gate):
    settings.HEALTH_CHECK_DEADLINE = 30.0
    settings.HEALTH_CACHE_TTL = 0
    hung = GatedCheck("hung", gate)
    hung.timeout = 0.2
    quick = ThreadRecordingCheck("quick")
    began = time.monotonic()
    for _ in range(5):  # the hung run holds one thread all along; the quick check gets another
        report = run_checks([hung, quick])
        assert [result.status for result in report.results] == [Status.FAIL, Status.PASS]
    assert time.monotonic() - began < 10  # none waited for the deadline
    assert hung.starts == 1
    assert all(thread.is_alive() for thread in quick.threads)


def test_an_unexpected_exception_is_logged_and_reported_without_its_text(caplog):
    secret = "password=hunter2 host=db.internal"
    with caplog.at_level(logging.ERROR, logger="apps.ops.health.runner"):
        [result] = run_checks([RaisingCheck("broken", ValueError(secret))]).results
    assert result.status is Status.FAIL
    assert result.output == "unexpected error (ValueError); see the logs"
    assert secret not in result.output
    assert any(
        secret in record.getMessage() or secret in str(record.exc_info[1]) for record in caplog.records
    )


def test_warnings_and_non_critical_failures_warn_but_do_not_fail_the_report():
    checks = [
        RaisingCheck("slow", CheckWarning("slower than usual")),
        RaisingCheck("optional", CheckFailed("down"), critical=False),
    ]
    report = run_checks(checks)
    assert [result.status for result in report.results] == [Status.WARN, Status.FAIL]
    assert report.status is Status.WARN
    assert report.http_status == 200


def test_a_critical_failure_fails_the_report():
    report = run_checks([RaisingCheck("needed", CheckFailed("down"))])
    assert report.status is Status.FAIL
    assert report.http_status == 503


def test_results_set_the_status_and_duration_gauges():
    def sample(metric, check_key):
        for family in metric.collect():
            for item in family.samples:
                if item.labels.get("check") == check_key:
                    return item.value
        return None

    run_checks(
        [RaisingCheck("gauge-fail", CheckFailed("down")), RaisingCheck("gauge-warn", CheckWarning("w"))]
    )
    assert sample(HEALTH_CHECK_STATUS, "gauge-fail") == 0.0
    assert sample(HEALTH_CHECK_STATUS, "gauge-warn") == 0.5
    assert sample(HEALTH_CHECK_DURATION, "gauge-fail") >= 0.0


def test_the_report_body_follows_the_health_json_shape():
    checks = [RaisingCheck("cache", CheckFailed("redis: ConnectionError: refused"))]
    report = run_checks(checks)
    anonymous = report.as_health_json(details=False)
    assert anonymous == {"status": "fail", "checks": {"cache": [{"status": "fail"}]}}
    detailed = report.as_health_json(details=True)
    [entry] = detailed["checks"]["cache"]
    assert entry["status"] == "fail"
    assert entry["output"] == "redis: ConnectionError: refused"
    assert entry["observedUnit"] == "ms"
    assert isinstance(entry["observedValue"], float)
    assert entry["time"].endswith("Z")
    assert detailed["output"] == "failing critical checks: cache"


# --- Configuration ---------------------------------------------------------------------------


def test_settings_choose_criticality_and_timeouts(settings):
    settings.HEALTH_CHECKS = {
        **settings.HEALTH_CHECKS,
        "cache": {"class": "apps.ops.health.checks.CacheCheck", "critical": False, "timeout": 0.25},
    }
    [cache_check] = [check for check in configured_checks() if check.name == "cache"]
    assert cache_check.critical is False
    assert cache_check.timeout == 0.25


def test_default_readiness_checks_and_their_criticality(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    critical = {check.key: check.critical for check in readiness_checks()}
    assert critical["shutdown"] and critical["migrations"]
    # Shared by every pod: their outage degrades pages, it must not take every pod out of service.
    assert critical["database:default"] is False
    assert critical["cache"] is False
    assert critical["circuit_breakers"] is False
    assert critical["memory"] is False
    assert not any(critical[key] for key in critical if key.startswith("disk:"))


def test_the_cache_check_is_not_critical_without_redis(settings):
    settings.REDIS_URL = ""
    [cache_check] = [check for check in configured_checks(["cache"])]
    assert cache_check.critical is False


def test_a_check_class_that_is_not_a_health_check_is_refused(settings):
    settings.HEALTH_CHECKS = {"bogus": {"class": "django.http.HttpResponse"}}
    with pytest.raises(ImproperlyConfigured, match="not a HealthCheck subclass"):
        configured_checks()


def test_an_unknown_option_is_refused_with_the_check_name(settings):
    settings.HEALTH_CHECKS = {"disk": {"class": "apps.ops.health.checks.DiskCheck", "size": 3}}
    with pytest.raises(ImproperlyConfigured, match="HEALTH_CHECKS\\['disk'\\]"):
        configured_checks()


# --- Database --------------------------------------------------------------------------------


def _pool_connections_in_use() -> int:
    stats = connections["default"].pool.get_stats()
    return stats["pool_size"] - stats["pool_available"]


@pytest.mark.django_db
def test_database_check_passes_and_returns_its_connection_to_the_pool():
    in_use_before = _pool_connections_in_use()
    checks = DatabaseCheck.build()
    report = run_checks(checks)
    [result] = report.results
    assert result.status is Status.PASS, result.output
    assert result.component_id == "default"
    assert result.observation.unit == "ms"
    assert _pool_connections_in_use() == in_use_before


@pytest.mark.django_db
def test_database_check_is_bounded_by_a_statement_timeout():
    [check] = DatabaseCheck.build(query="SELECT pg_sleep(5)")
    check.timeout = 0.3
    outcome = {}

    def run_in_own_thread():  # as the runner does: a fresh autocommit connection from the pool
        began = time.monotonic()
        try:
            check.run()
        except CheckFailed as exc:
            outcome["error"] = exc.message
        finally:
            outcome["seconds"] = time.monotonic() - began
            with connections["default"].cursor() as cursor:  # the pooled session is left as it was
                cursor.execute("SHOW statement_timeout")
                outcome["session_timeout"] = cursor.fetchone()[0]
            connections.close_all()

    thread = threading.Thread(target=run_in_own_thread)
    thread.start()
    thread.join(10)
    assert "canceling statement due to statement timeout" in outcome["error"]
    assert outcome["seconds"] < 4  # the query sleeps 5 s
    assert outcome["session_timeout"] == "0"


# --- Cache -----------------------------------------------------------------------------------


def test_cache_check_pings_redis_once(redis_server):
    counter = RedisCommandCounter(redis_server.port)
    before = counter.pings()
    [check] = CacheCheck.build()
    assert check.run() is None
    assert counter.pings() == before + 1


def passes(check) -> bool:
    try:
        return check.run() is None
    except CheckFailed:
        return False


@pytest.mark.servers
def test_cache_check_fails_fast_when_redis_is_stopped_and_passes_once_it_is_back(own_redis):
    [check] = CacheCheck.build()
    assert check.critical is False
    assert check.run() is None
    own_redis.stop()
    began = time.monotonic()
    with pytest.raises(CheckFailed, match=r"unreachable .* pages run without the cache"):
        check.run()
    assert time.monotonic() - began < 2  # one attempt: redis-py's retries would back off for seconds
    with pytest.raises(CheckFailed, match="unreachable"):
        check.run()  # known unreachable: answered without asking Redis again
    own_redis.restart()
    wait_until(lambda: passes(check), timeout=10, message="the cache check to pass again")


@pytest.mark.servers
def test_cache_check_gives_up_after_the_socket_timeout_when_redis_is_frozen(own_redis):
    [check] = CacheCheck.build()
    check.run()
    own_redis.freeze()
    try:
        began = time.monotonic()
        with pytest.raises(CheckFailed, match="unreachable"):
            check.run()
        assert time.monotonic() - began < 4  # one 0.5 s read timeout; redis-py's retries would take longer
        began = time.monotonic()
        with pytest.raises(CheckFailed, match="unreachable"):
            check.run()  # known unreachable: answered without waiting on Redis again
        assert time.monotonic() - began < 0.5  # less than the read timeout: Redis was not asked
    finally:
        own_redis.thaw()
    wait_until(lambda: passes(check), timeout=10, message="the cache check to pass again")


def test_cache_check_uses_a_set_and_get_on_a_local_memory_cache(settings):
    settings.REDIS_URL = ""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    [check] = CacheCheck.build()
    assert check.critical is False
    assert check.run() is None


# --- Migrations ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_migrations_check_fails_on_an_unapplied_migration():
    MigrationRecorder.Migration.objects.filter(app="subscribers", name="0001_initial").delete()
    [check] = MigrationsCheck.build()
    with pytest.raises(CheckFailed, match=r"unapplied migration\(s\): subscribers\.0001_initial") as raised:
        check.run()
    assert raised.value.observation.value == 1


@pytest.mark.django_db
def test_migrations_check_remembers_that_all_migrations_are_applied(django_assert_num_queries):
    [check] = MigrationsCheck.build()
    assert check.run() == Observation(0, "unapplied migrations")
    MigrationRecorder.Migration.objects.filter(app="subscribers").delete()
    with django_assert_num_queries(0):
        assert check.run() == Observation(0, "unapplied migrations")
    # Nothing left to wait for: later runs need no check thread.
    assert not check.blocking
    assert not MigrationsCheck.build()[0].blocking


# --- Shutdown --------------------------------------------------------------------------------


def test_shutdown_check_fails_while_draining_and_runs_uncached():
    [check] = ShutdownCheck.build()
    check.name = "shutdown"
    assert run_checks([check]).status is Status.PASS
    shutdown.announce()
    try:
        report = run_checks([check])  # right after a pass: never served from the cache
        assert report.status is Status.FAIL
        assert "draining" in report.results[0].output
    finally:
        shutdown.reset()


# --- Circuit breakers ------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("fresh_breakers")
def test_circuit_breakers_check_passes_while_every_breaker_is_closed():
    get_breaker("sms-gateway")
    [check] = CircuitBreakersCheck.build()
    assert check.critical is False
    assert check.run() == Observation(0, "breakers not closed")


@pytest.mark.django_db
@pytest.mark.usefixtures("fresh_breakers")
def test_circuit_breakers_check_warns_about_an_open_breaker():
    trip("billing-api")
    assert breaker_status("billing-api").state == "open"
    [check] = CircuitBreakersCheck.build()
    with pytest.raises(CheckWarning, match="billing-api open") as raised:
        check.run()
    assert raised.value.observation == Observation(1, "breakers not closed")


# --- Disk and memory -------------------------------------------------------------------------


def test_disk_check_reports_free_space_of_a_writable_directory(tmp_path):
    [check] = DiskCheck.build(paths=[str(tmp_path)], warn_free_percent=0)
    observation = check.run()
    assert observation.unit == "% free"
    assert 0 < observation.value <= 100


def test_disk_check_warns_below_the_free_space_threshold(tmp_path):
    [check] = DiskCheck.build(paths=[str(tmp_path)], warn_free_percent=100.1)
    with pytest.raises(CheckWarning, match="% free"):
        check.run()


def test_disk_check_fails_for_a_missing_directory(tmp_path):
    [check] = DiskCheck.build(paths=[str(tmp_path / "gone")], warn_free_percent=10)
    with pytest.raises(CheckFailed, match="FileNotFoundError"):
        check.run()


def test_disk_check_runs_in_a_check_thread_only_on_a_network_filesystem(tmp_path):
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
        "30 22 0:40 / /srv/shared rw,relatime - nfs4 fileserver:/export rw\n"
        "31 22 0:41 / /srv/my\\040files rw,relatime - fuse.sshfs host:/ rw\n"
        "32 30 8:2 / /srv/shared/local rw,relatime - xfs /dev/sdb1 rw\n"
    )
    local = DiskCheck(path="/var/lib/app", warn_free_percent=10, mountinfo=str(mountinfo))
    assert not local.blocking
    assert DiskCheck(path="/srv/shared/data", warn_free_percent=10, mountinfo=str(mountinfo)).blocking
    assert DiskCheck(path="/srv/my files/x", warn_free_percent=10, mountinfo=str(mountinfo)).blocking
    # The longest mount point wins: a local disk mounted inside the network share.
    assert not DiskCheck(path="/srv/shared/local/x", warn_free_percent=10, mountinfo=str(mountinfo)).blocking
    # When the mounts cannot be read, assume the worst.
    missing = str(tmp_path / "no-such-mountinfo")
    assert DiskCheck(path="/var/lib/app", warn_free_percent=10, mountinfo=missing).blocking


def test_disk_checks_default_to_the_data_and_temporary_directories(settings):
    assert [check.component_id for check in DiskCheck.build()] == settings.HEALTH_DISK_PATHS
    assert str(settings.DATA_DIR) in settings.HEALTH_DISK_PATHS


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def fake_proc(tmp_path):
    proc = tmp_path / "proc"
    _write(proc / "meminfo", "MemTotal:       16384000 kB\nMemFree: 1000 kB\nMemAvailable:    8192000 kB\n")
    return proc


def test_memory_check_reads_the_cgroup_v2_limit_without_reclaimable_cache(tmp_path, fake_proc):
    cgroup = tmp_path / "cgroup"
    _write(fake_proc / "self" / "cgroup", "0::/kubepods/pod1/app\n")
    own = cgroup / "kubepods" / "pod1" / "app"
    _write(own / "memory.max", f"{1024 * 2**20}\n")
    _write(own / "memory.current", f"{900 * 2**20}\n")
    _write(own / "memory.stat", f"anon 1\ninactive_file {100 * 2**20}\nactive_file 5\n")
    [check] = MemoryCheck.build(warn_percent=90, cgroup_root=str(cgroup), proc_root=str(fake_proc))
    assert check.memory_usage() == (800 * 2**20, 1024 * 2**20, "cgroup v2")
    assert check.run() == Observation(78.1, "%")


def test_memory_check_warns_at_the_threshold(tmp_path, fake_proc):
    cgroup = tmp_path / "cgroup"
    _write(fake_proc / "self" / "cgroup", "0::/\n")
    _write(cgroup / "memory.max", f"{1000 * 2**20}\n")
    _write(cgroup / "memory.current", f"{950 * 2**20}\n")
    [check] = MemoryCheck.build(warn_percent=90, cgroup_root=str(cgroup), proc_root=str(fake_proc))
    with pytest.raises(CheckWarning, match="memory 95% of the cgroup v2 limit"):
        check.run()


def test_memory_check_reads_the_cgroup_v1_limit(tmp_path, fake_proc):
    cgroup = tmp_path / "cgroup"
    _write(fake_proc / "self" / "cgroup", "5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n")
    own = cgroup / "memory" / "docker" / "abc"
    _write(own / "memory.limit_in_bytes", f"{2048 * 2**20}\n")
    _write(own / "memory.usage_in_bytes", f"{1024 * 2**20}\n")
    _write(own / "memory.stat", f"cache 7\ntotal_inactive_file {512 * 2**20}\n")
    [check] = MemoryCheck.build(warn_percent=90, cgroup_root=str(cgroup), proc_root=str(fake_proc))
    assert check.memory_usage() == (512 * 2**20, 2048 * 2**20, "cgroup v1")


def test_memory_check_uses_host_memory_without_a_cgroup_limit(tmp_path, fake_proc):
    cgroup = tmp_path / "cgroup"
    _write(fake_proc / "self" / "cgroup", "0::/user.slice\n")
    _write(cgroup / "user.slice" / "memory.max", "max\n")
    _write(cgroup / "memory" / "memory.limit_in_bytes", "9223372036854771712\n")
    [check] = MemoryCheck.build(warn_percent=90, cgroup_root=str(cgroup), proc_root=str(fake_proc))
    assert check.memory_usage() == (8192000 * 1024, 16384000 * 1024, "host")
    assert check.run() == Observation(50.0, "%")


def test_memory_check_on_this_machine():
    [check] = MemoryCheck.build(warn_percent=100.1)
    observation = check.run()
    assert 0 < observation.value < 100
    [always_warns] = MemoryCheck.build(warn_percent=0)
    with pytest.raises(CheckWarning):
        always_warns.run()


def test_the_static_files_check_fails_until_collected_static_files_are_loaded(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    with pytest.raises(CheckFailed, match=r"run `manage.py collectstatic`"):
        StaticFilesCheck().run()
    (tmp_path / "staticfiles.json").write_text(
        json.dumps({"version": "1.1", "paths": {"app.css": "app.0123456789ab.css"}})
    )
    settings.STORAGES = {**settings.STORAGES}  # a fresh storage, as a restarted server has
    assert StaticFilesCheck().run() is None
    # Development serves from the finders: nothing to collect.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    assert StaticFilesCheck().run() is None
