"""Graceful shutdown under real gunicorn and real signals: announce, drain, cleanup, exit.

Each test starts gunicorn with ``deploy/gunicorn.conf.py`` serving ``tests.ops.drain_site`` (the
project, plus ``/slow/``, a view calling a slow local upstream through ``apps.ops.http``), sends real
signals to the master, and checks what the clients received and what the processes logged.
"""

from __future__ import annotations

import http.client
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.gunicorn import GUNICORN, PROJECT_DIR, GunicornServer
from tests.servers import free_port, wait_until
from tests.upstream import Upstream

pytestmark = [pytest.mark.servers, pytest.mark.slow]

SLOW_SECONDS = 3.0


# --- HTTP clients that tell a complete answer from every way of not getting one ---------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes
    sent: float  # time.monotonic() when the request was sent
    received: float  # ... and when the response was complete

    @property
    def closes_connection(self) -> bool:
        return self.headers.get("connection", "").lower() == "close"


class NotAccepted(Exception):
    """The TCP connection was never established (refused, or no answer to the SYN)."""


class Broken(Exception):
    """Connected, but no complete response: reset, closed early or truncated."""


def _connect(port: int, timeout: float, read_timeout: float = 30) -> http.client.HTTPConnection:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.connect()
    except OSError as exc:  # ConnectionRefusedError, or a timeout: the SYN went unanswered
        connection.close()
        raise NotAccepted(repr(exc)) from exc
    connection.sock.settimeout(max(timeout, read_timeout))
    return connection


def _exchange(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    sent = time.monotonic()
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        content = response.read()  # IncompleteRead if the body is cut short of Content-Length
        headers: dict[str, str] = {}
        for name, value in response.getheaders():  # repeated headers (Set-Cookie) joined
            headers[name.lower()] = f"{headers[name.lower()]}, {value}" if name.lower() in headers else value
        return Reply(response.status, headers, content, sent, time.monotonic())
    except (OSError, http.client.HTTPException) as exc:
        connection.close()
        raise Broken(repr(exc)) from exc


def request(port: int, path: str, *, method: str = "GET", timeout: float = 15, **kwargs) -> Reply:
    """One request on a fresh connection."""
    connection = _connect(port, timeout)
    try:
        return _exchange(connection, method, path, **kwargs)
    finally:
        connection.close()


# --- The server under test --------------------------------------------------------------------


class Server(GunicornServer):
    """The server under test; whatever a test leaves running is killed (SIGKILL) at the end."""

    def __init__(self, env: dict[str, str], *, port: int, log_dir: Path, **popen_kwargs) -> None:
        super().__init__(
            env,
            port=port,
            log_dir=log_dir,
            stop_signal=signal.SIGKILL,
            stop_timeout=10,
            popen_kwargs=popen_kwargs,
        )

    def is_serving(self) -> bool:
        try:
            return request(self.port, "/live", timeout=2).status == 200
        except (NotAccepted, Broken):
            return False

    @property
    def errors(self) -> str:
        """gunicorn's own log (stderr)."""
        return self.stderr_text()

    def records(self) -> list[dict]:
        """The JSON lines on stdout: the access log and the application's log records."""
        complete_lines = self.stdout_text().split("\n")[:-1]  # the last one may be half written
        return [json.loads(line) for line in complete_lines if line.startswith("{")]

    def worker_pids(self) -> set[int]:
        return {int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", self.errors)}

    def ready_worker_pids(self) -> set[int]:
        """Workers that loaded the application and installed the drain handlers."""
        return {int(pid) for pid in re.findall(r"Worker ready \(pid: (\d+)\)", self.errors)}

    def drain_summaries(self) -> dict[int, dict]:
        return {
            r["pid"]: r for r in self.records() if r.get("logger") == "apps.ops.shutdown" and "drained" in r
        }


def _base_env(server_env: dict[str, str], tmp: Path, port: int, upstream: Upstream) -> dict[str, str]:
    """Environment of a server whose writable files all go under ``tmp``."""
    env = dict(server_env)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.ops.drain_site.settings",
        DRAIN_TEST_UPSTREAM_URL=upstream.url,
        WEB_CONCURRENCY="2",
        GUNICORN_THREADS="4",
        # No recycling: the workers that booted are the workers that drain.
        GUNICORN_MAX_REQUESTS="0",
        GUNICORN_MAX_REQUESTS_JITTER="0",
        GUNICORN_RUNTIME_DIR=str(tmp / f"run-{port}"),
        TMPDIR=str(tmp),
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
        DRAIN_DELAY_SECONDS="0",
        GUNICORN_GRACEFUL_TIMEOUT="30",
        PYTHONDONTWRITEBYTECODE="1",
        HEALTH_SHOW_DETAILS="always",
    )
    return env


def _launch(env: dict[str, str], port: int, log_dir: Path, **popen_kwargs) -> Server:
    server = Server(env, port=port, log_dir=log_dir, **popen_kwargs).start(timeout=60)
    try:
        workers = int(env["WEB_CONCURRENCY"])
        wait_until(
            lambda: len(server.ready_worker_pids()) == workers, timeout=30, message="every worker to boot"
        )
        ready = request(server.port, "/ready")
        assert ready.status == 200, ready.body  # so a 503 later is the drain's doing
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture
def upstream():
    server = Upstream(delay=SLOW_SECONDS).start()
    yield server
    server.stop()


@pytest.fixture
def start_server(transactional_db, server_env, tmp_path, upstream):
    started: list[Server] = []

    def start(**settings: str) -> Server:
        port = free_port()
        env = _base_env(server_env, tmp_path, port, upstream)
        env.update(settings)
        server = _launch(env, port, tmp_path / f"logs-{port}")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _in_flight(server: Server, upstream: Upstream, pool: ThreadPoolExecutor, count: int = 1) -> list[Future]:
    """Start ``count`` slow requests and return once the upstream has received every one."""
    before = upstream.request_count
    futures = [pool.submit(request, server.port, "/slow/", timeout=60) for _ in range(count)]
    wait_until(
        lambda: upstream.request_count >= before + count, timeout=15, message="slow requests in flight"
    )
    return futures


def _assert_cleanup_ran_in_every_worker(server: Server) -> dict[int, dict]:
    summaries = server.drain_summaries()
    assert set(summaries) == server.worker_pids(), server.records()[-20:]
    for summary in summaries.values():
        assert summary["cleanup"] == {
            "drain-site": "ok",
            "breakers-store": "ok",
            "cache-redis-ping": "ok",
            "database": "ok",
            "redis": "ok",
            "logs": "ok",
        }
    cleanup_pids = {r["pid"] for r in server.records() if r.get("message") == "drain-site cleanup ran"}
    assert cleanup_pids == server.worker_pids()
    return summaries


# --- Acceptance: the drain, step by step ------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_sigterm_announces_then_drains_the_activation_in_flight_and_exits_zero(
    start_server, upstream, tenant_factory, staff_factory, plan_factory
):
    from apps.subscribers.models import Subscriber

    tenant = tenant_factory("drain-isp")
    staff_factory(tenant, "drain-staff", password="pw-drain-123")
    subscriber = Subscriber.objects.create(
        tenant=tenant, name="Ada", email="ada@example.net", plan=plan_factory(tenant)
    )
    assert subscriber.status == Subscriber.Status.PENDING
    drain_delay = 2.0
    # A graceful timeout far beyond the drain, so that a master waiting for it could not pass for one
    # waiting for the request.
    server = start_server(
        DRAIN_DELAY_SECONDS=str(drain_delay),
        PROVISIONING_API_URL=upstream.url,
        GUNICORN_GRACEFUL_TIMEOUT="120",
    )
    workers = server.worker_pids()
    session = Session(server.port, "drain-staff", "pw-drain-123")
    with ThreadPoolExecutor(max_workers=1) as pool:
        # Activate: the view calls the provisioning API (3 s to answer) through apps.ops.http.
        activation = pool.submit(
            session.send,
            "POST",
            f"/subscribers/{subscriber.pk}/activate/",
            {"csrfmiddlewaretoken": session.cookies["csrftoken"]},
        )
        wait_until(lambda: upstream.request_count == 1, timeout=15, message="the activation to be in flight")
        sigterm = server.signal(signal.SIGTERM)
        wait_until(lambda: "SIGTERM: draining" in server.errors, timeout=5, message="the drain to start")

        # Announce phase: /ready is 503 in every worker while a normal page is still served (after
        # it, the listeners are closed: a request would not be accepted).
        ready_503_pids: set[int] = set()

        def every_worker_reports_draining() -> bool:
            reply = request(server.port, "/ready")
            assert reply.status == 503, reply.body
            assert b"shutdown" in reply.body
            page = request(server.port, "/")
            assert page.status == 200 and b"DotMac Platform" in page.body
            assert page.closes_connection  # clients move to another instance when they reconnect
            ready_503_pids.update(
                r["pid"] for r in server.records() if r.get("path") == "/ready" and r.get("status") == 503
            )
            return ready_503_pids == workers

        wait_until(every_worker_reports_draining, timeout=drain_delay, interval=0.01, message="503s")

        reply = activation.result(timeout=30)
        status, exited = server.wait_exit(timeout=60)

    assert (reply.status, reply.headers["location"]) == (302, f"/subscribers/{subscriber.pk}/")
    assert upstream.requests[0].path == "/subscribers"
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert status == 0
    drain_time = exited - sigterm
    print(f"\ndrain, a {SLOW_SECONDS:.0f} s activation in flight: {drain_time:.2f} s (delay {drain_delay} s)")
    assert exited >= reply.received  # it waited for the request...
    assert drain_time < 60  # ...and not for the graceful timeout (120 s)

    summaries = _assert_cleanup_ran_in_every_worker(server)
    assert sum(s["in_flight_at_stop"] for s in summaries.values()) == 1
    assert sum(s["completed"] for s in summaries.values()) == 1
    assert all(s["still_running"] == 0 for s in summaries.values())
    assert re.search(
        r"drain finished in [\d.]+ s: announced [\d.]+ s, 2 workers stopped, 2 gracefully, "
        r"0 killed at the graceful deadline",
        server.errors,
    )


def test_exit_is_prompt_when_nothing_is_in_flight(start_server):
    server = start_server(DRAIN_DELAY_SECONDS="0", GUNICORN_GRACEFUL_TIMEOUT="120")
    sigterm = server.signal(signal.SIGTERM)
    # Nothing is waited for, not the graceful timeout (120 s) in particular.
    status, exited = server.wait_exit(timeout=60)
    print(f"\ndrain with nothing in flight: {exited - sigterm:.2f} s")
    assert status == 0
    _assert_cleanup_ran_in_every_worker(server)


def test_second_sigterm_and_sigint_during_the_drain_skip_no_step(start_server, upstream):
    drain_delay = 3.0
    server = start_server(DRAIN_DELAY_SECONDS=str(drain_delay))
    with ThreadPoolExecutor(max_workers=2) as pool:
        [slow] = _in_flight(server, upstream, pool)
        sigterm = server.signal(signal.SIGTERM)
        wait_until(lambda: "SIGTERM: draining" in server.errors, timeout=5, message="the drain to start")
        server.signal(signal.SIGTERM)
        server.signal(signal.SIGINT)
        wait_until(
            lambda: "SIGINT ignored: already draining" in server.errors, timeout=5, message="SIGINT handled"
        )
        # Still announcing, still serving (once the announce phase is over, no request is accepted).
        assert request(server.port, "/ready").status == 503
        assert request(server.port, "/").status == 200
        reply = slow.result(timeout=30)
        status, exited = server.wait_exit(timeout=60)

    assert reply.status == 200
    assert status == 0
    assert "SIGTERM ignored: already draining" in server.errors
    assert exited - sigterm >= drain_delay  # the announce phase ran to its end
    _assert_cleanup_ran_in_every_worker(server)


def test_sigquit_during_the_drain_stops_immediately(start_server, upstream):
    # Neither the announce phase nor the request in flight would be over before a minute.
    upstream.delay = 60.0
    server = start_server(DRAIN_DELAY_SECONDS="60")
    with ThreadPoolExecutor(max_workers=2) as pool:
        [slow] = _in_flight(server, upstream, pool)
        server.signal(signal.SIGTERM)
        wait_until(lambda: "SIGTERM: draining" in server.errors, timeout=5, message="the drain to start")
        server.signal(signal.SIGQUIT)
        status, _ = server.wait_exit(timeout=30)
        with pytest.raises(Broken):
            slow.result(timeout=10)  # the request in flight was cut: that is what SIGQUIT means
    assert "SIGQUIT during the drain: stopping immediately" in server.errors
    assert status == 0
    killed = [(r["killed_reason"], r["path"]) for r in server.records() if "killed_reason" in r]
    assert killed == [("immediate stop", "/slow/")]


def test_request_longer_than_the_graceful_timeout_is_killed_and_logged(start_server, upstream):
    upstream.delay = 60.0  # the request would take the breaker's whole request timeout (30 s)
    server = start_server(DRAIN_DELAY_SECONDS="0", GUNICORN_GRACEFUL_TIMEOUT="2")
    with ThreadPoolExecutor(max_workers=2) as pool:
        [slow] = _in_flight(server, upstream, pool)
        sigterm = server.signal(signal.SIGTERM)
        status, exited = server.wait_exit(timeout=25)  # well before the request could have finished
        with pytest.raises(Broken):
            slow.result(timeout=10)
    print(f"\ndrain with a request beyond the graceful timeout (2 s): {exited - sigterm:.2f} s")
    assert status == 0
    killed = [r for r in server.records() if "killed_reason" in r]
    assert [(r["killed_reason"], r["method"], r["path"]) for r in killed] == [
        ("graceful timeout", "GET", "/slow/")
    ]
    assert killed[0]["duration_seconds"] >= 2.0
    assert re.search(r"graceful timeout \(2 s\): killing workers \d+", server.errors)
    assert re.search(r"1 killed at the graceful deadline \(pids \d+\)", server.errors)


def test_the_drain_survives_a_configuration_reload(start_server, upstream):
    server = start_server(DRAIN_DELAY_SECONDS="1")
    first_workers = server.worker_pids()
    server.signal(signal.SIGHUP)  # re-reads deploy/gunicorn.conf.py, replaces every worker
    wait_until(
        lambda: len(server.ready_worker_pids() - first_workers) == 2 and "Worker exiting" in server.errors,
        timeout=30,
        message="the reload to replace the workers",
    )
    with ThreadPoolExecutor(max_workers=2) as pool:
        [slow] = _in_flight(server, upstream, pool)
        server.signal(signal.SIGTERM)
        reply = slow.result(timeout=30)
        status, _ = server.wait_exit(timeout=20)
    assert reply.status == 200
    assert status == 0
    assert "SIGTERM: draining; /ready answers 503 for 1.0 s" in server.errors
    summaries = server.drain_summaries()  # the reload drained the first workers, SIGTERM the others
    assert set(summaries) == server.worker_pids() and all(s["drained"] for s in summaries.values())


def _masters(server: Server) -> list[int]:
    return [int(pid) for pid in re.findall(r"Listening at: \S+ \((\d+)\)", server.errors)]


def test_stopping_the_old_master_after_an_upgrade_keeps_the_new_one_serving(start_server):
    """USR2 starts a new master on the same sockets; the old one's drain must not shut them."""
    server = start_server(DRAIN_DELAY_SECONDS="0.5")
    server.signal(signal.SIGUSR2)
    wait_until(lambda: len(_masters(server)) == 2, timeout=30, message="the new master to start")
    new_master = _masters(server)[1]
    wait_until(lambda: len(server.ready_worker_pids()) == 4, timeout=60, message="the new workers to boot")
    try:
        server.signal(signal.SIGTERM)  # the old master drains and exits
        during: Counter = Counter()
        while server.process.poll() is None:
            reply = request(server.port, "/", timeout=5)
            # The sockets are shared, so an old worker may accept a connection just before it stops:
            # it must then refuse it as the drain contract says (503, Connection: close, Retry-After).
            refused = reply.status == 503 and reply.closes_connection and "retry-after" in reply.headers
            during["200" if reply.status == 200 else "drain refusal" if refused else reply.status] += 1
        assert server.process.returncode == 0
        assert set(during) <= {"200", "drain refusal"}, during
        after = Counter(request(server.port, "/", timeout=5).status for _ in range(20))
        assert after == Counter({200: 20}), after  # the new master's workers answer, on the same port
    finally:  # the new master is not the test's child: it must not outlive the test either
        os.kill(new_master, signal.SIGQUIT)
        try:
            wait_until(lambda: not Path(f"/proc/{new_master}").exists(), timeout=30, message="the new master")
        except TimeoutError:
            os.kill(new_master, signal.SIGKILL)
            raise


# --- Under load -------------------------------------------------------------------------------


@dataclass
class LoadCounts:
    ok: int = 0
    refused_503: int = 0
    not_accepted: int = 0
    broken: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _load_client(
    port: int, counts: LoadCounts, stop: threading.Event, index: int, stop_serving: list
) -> None:
    """Keep one request going: every 4th a slow one, reusing the connection while the server allows."""
    connection: http.client.HTTPConnection | None = None
    n = 0
    while not stop.is_set():
        path = "/slow/" if n % 4 == index % 4 else "/"
        n += 1
        try:
            if connection is None:
                connection = _connect(port, timeout=2)
            reply = _exchange(connection, "GET", path)
        except NotAccepted:
            with counts.lock:
                counts.not_accepted += 1
            connection = None
            continue
        except Broken as exc:
            with counts.lock:
                counts.broken.append(f"{path}: {exc}")
            connection = None
            continue
        with counts.lock:
            if reply.status == 200 and (path == "/slow/" or b"</html>" in reply.body):
                counts.ok += 1
            elif (
                reply.status == 503
                and reply.closes_connection
                and reply.headers.get("retry-after") == "1"
                and stop_serving
                and reply.received >= stop_serving[0]
            ):
                counts.refused_503 += 1
            else:
                counts.bad.append(f"{path}: {reply.status} {reply.headers} {reply.body[:200]!r}")
        if reply.closes_connection:
            connection.close()
            connection = None
    if connection is not None:
        connection.close()


def test_under_load_every_accepted_request_gets_a_complete_response(start_server, upstream):
    upstream.delay = 0.3
    drain_delay = 1.0
    server = start_server(DRAIN_DELAY_SECONDS=str(drain_delay))
    counts = LoadCounts()
    stop = threading.Event()
    stop_serving: list[float] = []  # when the announce phase ended (503s are allowed from then on)
    clients = [
        threading.Thread(target=_load_client, args=(server.port, counts, stop, i, stop_serving), daemon=True)
        for i in range(16)
    ]
    for client in clients:
        client.start()
    wait_until(lambda: counts.ok >= 100, timeout=30, message="load to build up")
    sigterm = server.signal(signal.SIGTERM)
    stop_serving.append(sigterm + drain_delay - 0.05)
    status, exited = server.wait_exit(timeout=30)
    # Keep knocking a little after the exit: those attempts must be refused, never half-served.
    wait_until(lambda: counts.not_accepted >= 16, timeout=10, message="clients to find the door closed")
    stop.set()
    for client in clients:
        client.join(timeout=10)

    print(
        f"\n16 clients, SIGTERM under load: {counts.ok} complete 200, {counts.refused_503} complete 503 "
        f"(Connection: close, Retry-After), {len(counts.broken)} reset or truncated, "
        f"{len(counts.bad)} unexpected, {counts.not_accepted} connections not accepted; "
        f"drain {exited - sigterm:.2f} s"
    )
    assert status == 0
    assert counts.broken == []
    assert counts.bad == []
    assert counts.ok > 100
    _assert_cleanup_ran_in_every_worker(server)


# --- Writes: a POST commits fully or leaves nothing -------------------------------------------


class Session:
    """A logged-in staff member on one kept-alive connection (cookies by hand)."""

    def __init__(self, port: int, username: str, password: str) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}
        self.connection = _connect(port, timeout=15)
        page = self.send("GET", "/accounts/login/")
        login = self.send(
            "POST",
            "/accounts/login/",
            {"username": username, "password": password, "csrfmiddlewaretoken": self._csrf(page)},
        )
        assert login.status == 302, login.body[:500]

    @staticmethod
    def _csrf(reply: Reply) -> str:
        return re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', reply.body).group(1).decode()

    def send(self, method: str, path: str, form: dict[str, str] | None = None) -> Reply:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        reply = _exchange(self.connection, method, path, body=body, headers=headers)
        for name, value in re.findall(r"(?:^|, )(\w+)=([^;]*)", reply.headers.get("set-cookie", "")):
            self.cookies[name] = value
        return reply

    def create_subscriber(self, email: str, plan_id: int) -> Reply:
        form = {"name": email.split("@")[0], "email": email, "plan": str(plan_id)}
        form["csrfmiddlewaretoken"] = self.cookies["csrftoken"]
        return self.send("POST", "/subscribers/new/", form)


@pytest.mark.django_db(transaction=True)
def test_post_creating_a_subscriber_commits_fully_or_leaves_no_row(
    start_server, upstream, tenant_factory, staff_factory, plan_factory
):
    from apps.subscribers.models import Subscriber

    tenant = tenant_factory("drain-isp")
    staff_factory(tenant, "drain-staff", password="pw-drain-123")
    plan = plan_factory(tenant)
    # No announce phase: connections kept alive before SIGTERM are still open when the workers stop.
    server = start_server(DRAIN_DELAY_SECONDS="0")
    sessions = [Session(server.port, "drain-staff", "pw-drain-123") for _ in range(6)]
    outcomes: dict[str, int] = {}
    for i, session in enumerate(sessions):
        email = f"before-{i}@example.net"
        outcomes[email] = session.create_subscriber(email, plan.pk).status
    with ThreadPoolExecutor(max_workers=2) as pool:
        [slow] = _in_flight(server, upstream, pool)  # keeps its worker busy draining meanwhile
        server.signal(signal.SIGTERM)
        wait_until(
            lambda: "listeners closed" in server.errors, timeout=10, message="the workers to be stopped"
        )

        def post_until_refused(index: int, session: Session) -> None:
            for n in range(50):
                email = f"during-{index}-{n}@example.net"
                reply = session.create_subscriber(email, plan.pk)
                outcomes[email] = reply.status
                if reply.status == 503:
                    assert reply.closes_connection and reply.headers["retry-after"] == "1", reply.headers
                    return
                assert reply.status == 302, reply.body[:500]
            raise AssertionError("the stopping worker never refused a POST")

        for index, session in enumerate(sessions):
            post_until_refused(index, session)
        assert slow.result(timeout=30).status == 200
        status, _ = server.wait_exit(timeout=30)
    assert status == 0

    committed = set(Subscriber.objects.filter(tenant=tenant).values_list("email", flat=True))
    created = {email for email, code in outcomes.items() if code == 302}
    refused = {email for email, code in outcomes.items() if code == 503}
    during = {email: code for email, code in outcomes.items() if email.startswith("during-")}
    print(
        f"\nPOSTs on kept-alive connections: {len(outcomes) - len(during)} before SIGTERM (302); "
        f"after the workers were stopped: {Counter(during.values())}"
    )
    assert set(outcomes.values()) == {302, 503}
    assert committed == created  # every 302 is a row, and no refused POST left one
    assert len(refused) == len(sessions)
    assert sum(s["refused"] for s in server.drain_summaries().values()) == len(refused)


# --- As in the container: non-root, project read-only, only a temporary directory writable -----


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to an unprivileged user needs root")
def test_runs_as_non_root_with_read_only_project_and_only_tmp_writable(
    transactional_db, server_env, upstream
):
    user = "nobody"
    runtime = Path(tempfile.mkdtemp(prefix="dotmac-nonroot-"))
    try:
        shutil.chown(runtime, user)
        as_user = {"user": user, "group": "nogroup", "extra_groups": []}
        # The project tree is owned by root: the user can read and run it, not write it.
        assert subprocess.run(["test", "-w", str(PROJECT_DIR)], **as_user).returncode != 0
        assert subprocess.run(["test", "-r", GUNICORN], **as_user).returncode == 0

        port = free_port()
        env = _base_env(server_env, runtime, port, upstream)
        env.update(
            HOME=str(runtime),
            DATA_DIR=str(runtime / "data"),
            GUNICORN_WORKER_TMP_DIR=str(runtime),
            PROMETHEUS_MULTIPROC_DIR=str(runtime / "prometheus"),
            DRAIN_DELAY_SECONDS="1",
        )
        server = _launch(env, port, runtime / "logs", **as_user)
        try:
            with ThreadPoolExecutor(max_workers=2) as pool:
                [slow] = _in_flight(server, upstream, pool)
                for pid in {server.process.pid, *server.worker_pids()}:
                    status_text = Path(f"/proc/{pid}/status").read_text()
                    uid = re.search(r"^Uid:\s+(\d+)", status_text, re.M).group(1)
                    assert int(uid) == pwd.getpwnam(user).pw_uid
                server.signal(signal.SIGTERM)
                reply = slow.result(timeout=30)
                status, _ = server.wait_exit(timeout=20)
        finally:
            server.stop()
        assert reply.status == 200
        assert status == 0
        _assert_cleanup_ran_in_every_worker(server)
        # Nothing was written in the project: a file the user wrote would belong to the user.
        written = subprocess.run(
            [
                "find",
                str(PROJECT_DIR),
                "-path",
                str(PROJECT_DIR / ".git"),
                "-prune",
                "-o",
                "-user",
                user,
                "-print",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert written == ""
        # Everything it wrote is in the temporary directory.
        assert list((runtime / "prometheus").glob("*.db"))
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
