"""The probe listener (``PROBE_PORT``) under real gunicorn: what it answers, that clients dripping
their headers into the main port do not delay it, that it keeps answering through the drain, and
that without ``PROBE_PORT`` nothing more listens."""

from __future__ import annotations

import http.client
import json
import os
import re
import select
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.gunicorn import GunicornServer
from tests.servers import free_port, port_open, wait_until
from tests.upstream import Upstream

pytestmark = [pytest.mark.servers, pytest.mark.slow]

TOKEN = "ops-token-0123456789abcdef"
PROBES = ("/live", "/ready", "/health")
POD_IP_HOST = "10.1.2.3:8000"  # what the kubelet sends as Host
PROBE_TIMEOUT = 2.0  # the kubelet's timeoutSeconds
SITE_HOST = "dotmac.example.com"
# An ordinary request through the whole middleware stack (host validation, HTTPS, sessions, tenants).
ORDINARY_PATH = "/api/v1/circuit-breakers/status"
ORDINARY_HEADERS = {"Host": SITE_HOST, "X-Forwarded-Proto": "https", "Authorization": f"Bearer {TOKEN}"}


# --- Clients -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes
    seconds: float

    def json(self) -> dict:
        return json.loads(self.body)


def get(
    port: int,
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> Answer:
    """One request on a fresh connection, timed; raises OSError / HTTPException if none comes."""
    began = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, headers={"Host": POD_IP_HOST, **(headers or {})})
        response = connection.getresponse()
        body = response.read()
        names = {name.lower(): value for name, value in response.getheaders()}
        return Answer(response.status, names, body, time.monotonic() - began)
    finally:
        connection.close()


def raw(port: int, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send ``data`` as it is and read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
        return received


def status_of(response: bytes) -> int:
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", response)
    assert match, response
    return int(match.group(1))


def shape(document: object) -> object:
    """The structure of a JSON document without its values: keys, and the shapes of list entries."""
    if isinstance(document, dict):
        return {key: shape(value) for key, value in document.items()}
    if isinstance(document, list):
        return [shape(entry) for entry in document]
    return type(document).__name__


# --- Processes and sockets ---------------------------------------------------------------------


def process_tree(pid: int) -> set[int]:
    """``pid`` and its children (the gunicorn master and its workers)."""
    pids = {pid}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])  # after "pid (comm) state"
        if parent == pid:
            pids.add(int(entry))
    return pids


def listening_ports(pids: set[int]) -> set[int]:
    """TCP ports on which any of ``pids`` holds a listening socket."""
    listening: dict[str, int] = {}  # socket inode -> port
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                listening[fields[9]] = int(fields[1].rsplit(":", 1)[1], 16)
    ports = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in listening:
                ports.add(listening[target[8:-1]])
    return ports


# --- The server under test ---------------------------------------------------------------------


class Server(GunicornServer):
    """gunicorn with deploy/gunicorn.conf.py under production settings, on a main and a probe port."""

    @property
    def probe_port(self) -> int:
        return int(self.env["PROBE_PORT"])

    def ready_workers(self) -> int:
        return len(re.findall(r"Worker ready \(pid: \d+\)", self.stderr_text()))


@pytest.fixture
def start_server(db, server_env, tmp_path, collected_static) -> Iterator[Callable[..., Server]]:
    """Start servers (production settings, 2 workers x 4 threads, a probe port unless told
    ``PROBE_PORT=""``); every one is stopped at the end, whatever happened."""
    started: list[Server] = []

    def start(**settings: str) -> Server:
        port = free_port()
        env = {
            **server_env,
            # Loopback only (production would bind 0.0.0.0); the probe port follows this host.
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "DJANGO_ENV": "production",
            "STATIC_ROOT": str(collected_static),  # as the image has them
            "DJANGO_SECRET_KEY": "production-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
            "ALLOWED_HOSTS": SITE_HOST,
            "WEB_CONCURRENCY": "2",
            "GUNICORN_THREADS": "4",
            # No recycling: the workers that booted serve the whole test.
            "GUNICORN_MAX_REQUESTS": "0",
            "GUNICORN_MAX_REQUESTS_JITTER": "0",
            "DRAIN_DELAY_SECONDS": "0",
            "TMPDIR": str(tmp_path),
            "LOG_LEVEL": "info",
            "OPS_API_TOKEN": TOKEN,
            "PROBE_PORT": str(free_port()),
            **settings,
        }
        if not env["PROBE_PORT"]:
            del env["PROBE_PORT"]
        server = Server(
            env,
            port=port,
            log_dir=tmp_path / f"logs-{len(started)}",
            # The drain, with no delay unless the test set one; SIGKILL if it is not over in 15 s.
            # (Not SIGQUIT: a gthread worker can hang in its SIGQUIT handler when the signal meets
            # its main thread handing a connection to the thread pool.)
            stop_signal=signal.SIGTERM,
            stop_timeout=15,
        )
        started.append(server)
        server.start(timeout=60)
        workers = int(env["WEB_CONCURRENCY"])
        wait_until(lambda: server.ready_workers() == workers, timeout=30, message="every worker to boot")
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


def wait_probe_ready(server: Server) -> None:
    def ready() -> bool:
        try:
            return get(server.probe_port, "/ready", timeout=2).status == 200
        except (OSError, http.client.HTTPException):
            return False

    wait_until(ready, timeout=30, interval=0.1, message="/ready to answer 200 on the probe port")


# --- 1. What the probe port answers --------------------------------------------------------------


def test_the_probe_port_answers_the_probes_as_the_main_port_does_and_nothing_else(start_server):
    server = start_server()
    wait_probe_ready(server)
    assert listening_ports(process_tree(server.pid)) == {server.port, server.probe_port}
    statuses: Counter = Counter()

    for path in PROBES:
        for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}):
            main = get(server.port, path, headers=headers)
            probe = get(server.probe_port, path, headers=headers)
            statuses[probe.status] += 1
            assert (main.status, probe.status) == (200, 200), (path, main.body, probe.body)
            assert shape(probe.json()) == shape(main.json()), (path, headers)
            assert probe.headers["content-type"] == "application/health+json"
            assert probe.headers["cache-control"] == "no-store"
            assert probe.headers["connection"] == "close"
            assert probe.headers["content-length"] == str(len(probe.body))
        head = get(server.probe_port, path, method="HEAD")
        assert (head.status, head.body) == (200, b"")
        assert head.headers["content-type"] == "application/health+json"
    # The token reaches the application: details (timings) for its holder only.
    anonymous = get(server.probe_port, "/ready").json()
    detailed = get(server.probe_port, "/ready", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert "observedValue" not in json.dumps(anonymous)
    assert detailed["checks"]["database"][0]["componentType"] == "datastore"
    assert get(server.probe_port, "/live", method="HEAD").headers["content-length"] == "17"

    for path in ("/live/", "/ready/", "/health/", "/ready?verbose=1", "/health/?x=1&y=2", "/%6Cive"):
        answer = get(server.probe_port, path)
        statuses[answer.status] += 1
        assert answer.status == 200, (path, answer.body)
        assert answer.headers["content-type"] == "application/health+json"

    for path in ("/", "/metrics", "/admin/", "/lives", "/live/x", "/ready//", ORDINARY_PATH):
        answer = get(server.probe_port, path, headers={"Authorization": f"Bearer {TOKEN}"})
        statuses[answer.status] += 1
        assert answer.status == 404, (path, answer.body)
        assert answer.headers["content-type"].startswith("text/plain")

    for method, path in (("POST", "/live"), ("PUT", "/ready"), ("DELETE", "/health"), ("POST", "/")):
        answer = get(server.probe_port, path, method=method)
        statuses[answer.status] += 1
        assert answer.status in (404, 405), (method, path, answer.status)
    assert get(server.probe_port, "/live", method="POST").headers["allow"] == "GET, HEAD"
    # A request with a body is answered too, and the unread body does not turn the close into a reset.
    posted = raw(server.probe_port, b"POST /ready HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
    statuses[status_of(posted)] += 1
    assert status_of(posted) == 405

    malformed = (
        b"garbage\r\n\r\n",
        b"GET /live\r\n\r\n",
        b"GET /live HTTP/2.0\r\n\r\n",
        b"GET live HTTP/1.1\r\n\r\n",
        b"GET /live HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET /live HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET /live HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # a TLS hello on a plain port
    )
    for data in malformed:
        response = raw(server.probe_port, data)
        statuses[status_of(response)] += 1
        assert status_of(response) == 400, (data, response)
        assert b"Connection: close\r\n" in response
    huge = raw(server.probe_port, b"GET /live HTTP/1.1\r\n" + b"X-Filler: " + b"a" * 10000 + b"\r\n\r\n")
    assert status_of(huge) == 431
    # Bare LF line ends are accepted (RFC 9112 allows it), as is HTTP/1.0.
    assert status_of(raw(server.probe_port, b"GET /live HTTP/1.0\n\n")) == 200
    assert status_of(raw(server.probe_port, b"GET http://10.1.2.3:8001/ready HTTP/1.1\r\n\r\n")) == 200

    assert not [status for status in statuses if status >= 500], statuses
    print(f"\nprobe port answers: {dict(sorted(statuses.items()))}")


def test_a_slow_client_on_the_probe_port_is_cut_off_and_delays_no_probe(start_server):
    server = start_server()
    wait_probe_ready(server)
    began = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.probe_port), timeout=10) as slow:
        slow.sendall(b"GET /live HTTP/1.1\r\n")
        # While it drips, probes are answered at once.
        for _ in range(3):
            assert get(server.probe_port, "/live", timeout=PROBE_TIMEOUT).status == 200
        for n in range(20):  # one header line every half second, until the server answers or closes
            if select.select([slow], [], [], 0.5)[0]:
                break
            try:
                slow.sendall(f"X-Drip-{n}: {n}\r\n".encode())
            except OSError:
                break
        cut_off = time.monotonic() - began
        received = b""
        try:
            while chunk := slow.recv(4096):
                received += chunk
        except OSError:
            pass  # a reset: the server closed while header lines were still arriving
    assert received == b"" or status_of(received) == 408, received
    # The whole request head had 2 s (REQUEST_TIMEOUT), however its bytes were spread: the server
    # did not wait for the 10 s the client would have kept dripping.
    assert cut_off < 8, cut_off
    print(f"\nslow client on the probe port cut off after {cut_off:.2f} s")
    assert get(server.probe_port, "/live", timeout=2).status == 200


# --- 2. Acceptance: headers dripped into the main port do not delay the probes --------------------

DRIP_CLIENTS = 20
DRIP_SECONDS = 12
PROBE_SECONDS = 10


@dataclass
class Attempt:
    path: str
    started: float
    status: int | None  # None: no answer within the timeout
    seconds: float
    error: str = ""


def attempt(port: int, path: str, headers: dict[str, str] | None = None) -> Attempt:
    began = time.monotonic()
    try:
        answer = get(port, path, headers=headers, timeout=PROBE_TIMEOUT)
    except (OSError, http.client.HTTPException) as exc:
        return Attempt(path, began, None, time.monotonic() - began, repr(exc))
    return Attempt(path, began, answer.status, answer.seconds)


def drip_headers(port: int, connected: threading.Barrier, stop: threading.Event) -> None:
    """A client sending one header line per second for DRIP_SECONDS, then finishing the request."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET {ORDINARY_PATH} HTTP/1.1\r\nHost: {SITE_HOST}\r\n".encode())
        connected.wait(timeout=30)
        for n in range(DRIP_SECONDS):
            if stop.wait(1.0):  # the client's pace; the test ends it early if it fails
                return
            sock.sendall(f"X-Drip-{n}: {n}\r\n".encode())
        sock.sendall(
            f"Authorization: Bearer {TOKEN}\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n".encode()
        )
        sock.settimeout(30)
        while sock.recv(65536):
            pass


def every_second(task: Callable[[], Attempt], until: float) -> list[Attempt]:
    """Run ``task`` once a second until ``until``, as a kubelet prober does: one at a time, the
    next one at once when the last took longer than the period (ticks missed meanwhile are lost)."""
    attempts = []
    next_start = time.monotonic()
    while next_start < until:
        time.sleep(max(next_start - time.monotonic(), 0))  # the prober's period
        attempts.append(task())
        next_start = max(next_start + 1.0, time.monotonic())
    return attempts


def test_probes_are_answered_while_clients_drip_headers_into_every_request_thread(start_server):
    server = start_server()
    wait_probe_ready(server)
    assert get(server.port, ORDINARY_PATH, headers=ORDINARY_HEADERS).status == 200

    stop = threading.Event()
    connected = threading.Barrier(DRIP_CLIENTS + 1)
    with ThreadPoolExecutor(max_workers=DRIP_CLIENTS + 4) as pool:
        drippers = [pool.submit(drip_headers, server.port, connected, stop) for _ in range(DRIP_CLIENTS)]
        try:
            connected.wait(timeout=30)  # every dripper has sent its request line
            until = time.monotonic() + PROBE_SECONDS
            live = pool.submit(every_second, lambda: attempt(server.probe_port, "/live"), until)
            ready = pool.submit(every_second, lambda: attempt(server.probe_port, "/ready"), until)
            # For comparison, the same prober on the main port, and ordinary requests there.
            main_live = pool.submit(every_second, lambda: attempt(server.port, "/live"), until)
            ordinary = pool.submit(
                every_second, lambda: attempt(server.port, ORDINARY_PATH, ORDINARY_HEADERS), until
            )
            live_attempts, ready_attempts = live.result(timeout=60), ready.result(timeout=60)
            main_live_attempts, ordinary_attempts = main_live.result(timeout=60), ordinary.result(timeout=60)
        finally:
            stop.set()
            connected.abort()  # a dripper still waiting there gives up
        for dripper in drippers:
            dripper.exception(timeout=60)  # every client is done (or failed) before the server stops

    def summary(attempts: list[Attempt]) -> str:
        answered = [a for a in attempts if a.status is not None]
        slowest = max((a.seconds for a in answered), default=float("nan"))
        return f"{len(answered)}/{len(attempts)} answered, slowest {slowest:.3f} s"

    ordinary_served = sum(a.status == 200 for a in ordinary_attempts)
    print(
        f"\n{DRIP_CLIENTS} clients dripping headers, {PROBE_SECONDS} s:"
        f"\n  probe port /live: {summary(live_attempts)}"
        f"\n  probe port /ready: {summary(ready_attempts)}"
        f"\n  main port /live: {summary(main_live_attempts)}"
        f"\n  main port ordinary requests: {ordinary_served}/{len(ordinary_attempts)} served "
        f"({ordinary_served / len(ordinary_attempts):.0%})"
    )
    assert len(live_attempts) >= PROBE_SECONDS - 1 and len(ready_attempts) >= PROBE_SECONDS - 1
    assert max(a.started for a in live_attempts + ready_attempts) < until  # all during the drip
    missed_live = [a for a in live_attempts if a.status != 200]
    assert missed_live == [], missed_live
    slow_or_failed_ready = [a for a in ready_attempts if a.status != 200 or a.seconds >= PROBE_TIMEOUT]
    assert slow_or_failed_ready == [], slow_or_failed_ready
    assert (
        ordinary_attempts and max(a.started for a in ordinary_attempts) < until
    )  # measured, during the drip


# --- 3. Through the drain -------------------------------------------------------------------------

SLOW_SECONDS = 4.0


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream(delay=SLOW_SECONDS).start()
    try:
        yield server
    finally:
        server.stop()


def test_the_probe_port_answers_through_the_drain_until_the_workers_are_gone(start_server, upstream):
    drain_delay = 2.0
    server = start_server(
        DJANGO_SETTINGS_MODULE="tests.ops.drain_site.settings",  # the project plus /slow/
        DRAIN_TEST_UPSTREAM_URL=upstream.url,
        DRAIN_DELAY_SECONDS=str(drain_delay),
    )
    wait_probe_ready(server)
    probe_port = server.probe_port
    with ThreadPoolExecutor(max_workers=1) as pool:
        # One request in flight through the whole drain keeps its worker alive after the listeners close.
        in_flight_from = time.monotonic()
        site = {"Host": SITE_HOST, "X-Forwarded-Proto": "https"}
        slow = pool.submit(get, server.port, "/slow/", headers=site, timeout=60)
        wait_until(lambda: upstream.request_count == 1, timeout=15, message="the slow request in flight")
        sigterm = server.signal(signal.SIGTERM)
        wait_until(lambda: "SIGTERM: draining" in server.stderr_text(), timeout=5, message="the drain")

        attempts: list[tuple[str, Attempt]] = []  # (phase, attempt)
        while server.running:
            phase = "closed" if "listeners closed" in server.stderr_text() else "announce"
            for path in ("/live", "/ready"):
                attempts.append((phase, attempt(probe_port, path)))
            time.sleep(0.1)
        reply = slow.result(timeout=30)
    status, exited = server.wait_exit(timeout=5)

    assert status == 0
    assert reply.status == 200, reply.body
    # The worker serving /slow/ lives at least until the upstream answered it.
    worker_alive_until = in_flight_from + SLOW_SECONDS
    answered = Counter((phase, a.path, a.status) for phase, a in attempts if a.status is not None)
    print(f"\nprobe port during the drain: {dict(answered)}; drain took {exited - sigterm:.2f} s")
    for phase in ("announce", "closed"):
        assert answered[(phase, "/live", 200)] >= 1, answered
        assert answered[(phase, "/ready", 503)] >= 1, answered
    assert set(answered) <= {(p, "/live", 200) for p in ("announce", "closed")} | {
        (p, "/ready", 503) for p in ("announce", "closed")
    }, answered
    announce_answers = [a for phase, a in attempts if phase == "announce" and a.status is not None]
    assert any(a.started + a.seconds < sigterm + drain_delay for a in announce_answers)
    missed = [a for _, a in attempts if a.status is None and a.started + a.seconds < worker_alive_until]
    assert missed == [], missed
    # The master closed its copy and the workers are gone: nothing listens on the probe port.
    assert not port_open(probe_port)


# --- 4. Without PROBE_PORT ------------------------------------------------------------------------


def test_without_probe_port_only_the_main_port_listens(start_server):
    server = start_server(PROBE_PORT="")
    assert "Probe listener" not in server.stderr_text()
    assert listening_ports(process_tree(server.pid)) == {server.port}
    assert get(server.port, "/live").status == 200
