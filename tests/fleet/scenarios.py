"""The degradation scenarios: a shared dependency fails under load, and what the fleet does.

Each function runs one scenario on a started :class:`~tests.fleet.cluster.Fleet` and returns its
figures (a plain dict, also what ``make fleet`` prints and docs/RELIABILITY.md quotes); the tests
in ``test_degradation.py`` hold them to the targets. :class:`Form` sets the durations: the short
form runs in ``make test``, the full one (the issue's durations) in ``make fleet``.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import redis

from tests.fleet.cluster import Fleet
from tests.fleet.controller import http_probe
from tests.fleet.load import Outcome, StaffMember, pages, percentile
from tests.servers import wait_until


@dataclass(frozen=True)
class Form:
    name: str
    baseline: float  # seconds of healthy load measured before anything fails
    redis_outage: float  # each of: stopped, then frozen
    postgres_outage: float
    after: float  # load kept up after a dependency is back
    provisioning_outage: float
    slow_clients: float  # how long the slow clients drip their headers
    # The test's overlay for the provisioning scenario; None: the manifests' and the app's values.
    breaker_reset_timeout: float | None = None
    cron_period: float | None = None
    # The routine operations (operations.py): load before and after each, the most it may take,
    # and how long the fleet stays scaled out.
    operation_baseline: float = 3
    operation_after: float = 3
    operation_timeout: float = 120
    scaled_out_hold: float = 3
    # The test's overlay of the ingress controller's upstream-keep-alive-timeout (None: its default),
    # so that the short form's connections idle for seconds, not a minute.
    ingress_keepalive_timeout: float | None = None
    # The migration scenario: how long a transaction holds the table the migration alters.
    long_transaction: float = 6


SHORT = Form(
    "short",
    baseline=6,
    redis_outage=8,
    postgres_outage=10,
    after=8,
    provisioning_outage=8,
    slow_clients=8,
    breaker_reset_timeout=10,
    cron_period=5,
    operation_baseline=3,
    operation_after=3,
    scaled_out_hold=3,
    ingress_keepalive_timeout=3,
)
FULL = Form(
    "full",
    baseline=15,
    redis_outage=30,
    postgres_outage=10,
    after=15,
    provisioning_outage=60,
    slow_clients=20,
    operation_baseline=6,
    operation_after=6,
    scaled_out_hold=10,
    long_transaction=15,
)


def hold(seconds: float) -> None:
    """Let the scenario run for a stated time (a window of the scenario, not a wait for a state)."""
    threading.Event().wait(seconds)


def window(outcomes: list[Outcome], start: float, end: float) -> dict:
    measured = pages(outcomes, start, end)
    ok = [o for o in measured if o.ok]
    return {
        "requests": len(measured),
        "succeeded": len(ok),
        "success_ratio": len(ok) / len(measured) if measured else 0.0,
        "p99_seconds": percentile([o.seconds for o in measured], 0.99),
        "failed_statuses": sorted({o.status for o in measured if not o.ok}),
    }


def endpoints_removed(fleet: Fleet, since: float) -> int:
    """How many times a pod left the ingress' endpoints since ``since``."""
    removed, previous = 0, None
    for at, endpoints in fleet.ingress.history:
        if previous is not None and at >= since:
            removed += len(set(previous) - set(endpoints))
        previous = endpoints
    return removed


def acknowledged_creates_lost(fleet: Fleet, outcomes: list[Outcome]) -> dict:
    emails = [o.email for o in outcomes if o.created_id]
    rows = fleet.subscriber_rows(emails) if emails else {}
    return {
        "acknowledged_creates": len(emails),
        "lost": sum(1 for count in rows.values() if count == 0),
        "duplicated": sum(1 for count in rows.values() if count > 1),
    }


# --- 1. Redis stopped, then frozen -----------------------------------------------------------------


def _keyspace_hits(fleet: Fleet) -> int:
    client = redis.Redis(port=fleet.redis.port, password=fleet.redis.password, socket_timeout=1)
    try:
        return int(client.info("stats")["keyspace_hits"])
    finally:
        client.close()


def _seconds_until_cache_hits(fleet: Fleet, since: float) -> float:
    """After Redis is back: seconds until pages hit the cache again (Redis counts the hits)."""
    before = _keyspace_hits(fleet)
    wait_until(lambda: _keyspace_hits(fleet) > before, timeout=60, interval=0.1, message="cache hits")
    return time.monotonic() - since


def redis_outage(fleet: Fleet, form: Form) -> dict:
    load = fleet.load().start()
    began = time.monotonic()
    try:
        hold(form.baseline)
        stopped = time.monotonic()
        fleet.redis.stop()
        hold(form.redis_outage)
        fleet.redis.restart()
        restarted = time.monotonic()
        hits_after_restart = _seconds_until_cache_hits(fleet, restarted)
        hold(max(0.0, form.baseline - (time.monotonic() - restarted)))
        frozen = time.monotonic()
        fleet.redis.freeze()
        try:
            hold(form.redis_outage)
        finally:
            fleet.redis.thaw()
        thawed = time.monotonic()
        hits_after_thaw = _seconds_until_cache_hits(fleet, thawed)
        hold(2)
    finally:
        outcomes = load.stop()
    return {
        "healthy": window(outcomes, began, stopped),
        "stopped": window(outcomes, stopped, restarted),
        "frozen": window(outcomes, frozen, thawed),
        "cache_hits_after_restart_seconds": hits_after_restart,
        "cache_hits_after_thaw_seconds": hits_after_thaw,
        "endpoints_removed": endpoints_removed(fleet, began),
        "restarts": fleet.controller.restarts(),
        **acknowledged_creates_lost(fleet, outcomes),
    }


# --- 2. PostgreSQL down ----------------------------------------------------------------------------


def postgres_outage(fleet: Fleet, form: Form) -> dict:
    load = fleet.load().start()
    began = time.monotonic()
    try:
        hold(form.baseline)
        down = time.monotonic()
        fleet.postgres.stop()
        hold(form.postgres_outage)
        fleet.postgres.restart()  # returns once PostgreSQL accepts connections
        up = time.monotonic()
        hold(form.after)
    finally:
        outcomes = load.stop()
    measured = pages(outcomes, began)
    failed = [o for o in measured if not o.ok]
    liveness_missed = [
        result
        for result in fleet.controller.results
        if result.kind == "liveness" and not result.ok and result.at >= began
    ]
    return {
        "healthy": window(outcomes, began, down),
        "outage": window(outcomes, down, up),
        "failed": len(failed),
        "failed_not_503": sum(1 for o in failed if o.status != 503),
        "slowest_failure_seconds": max((o.seconds for o in failed), default=0.0),
        "failed_from_5s_after_back": sum(1 for o in failed if o.started >= up + 5),
        "last_failure_after_back_seconds": max((o.started - up for o in failed), default=float("-inf")),
        "liveness_missed": len(liveness_missed),
        "restarts": fleet.controller.restarts(),
        "worker_timeouts": sum(
            pod.server.stderr_text().count("WORKER TIMEOUT") for pod in fleet.controller.pods
        ),
        "endpoints_removed": endpoints_removed(fleet, began),
        **acknowledged_creates_lost(fleet, outcomes),
    }


# --- 3. Provisioning API down across the fleet -----------------------------------------------------


def provisioning_outage(
    fleet: Fleet, form: Form, *, fail_max: int, reset_timeout: float, cron_period: float
) -> dict:
    pending = list(fleet.seeded["pending"])
    staff = fleet.staff()
    cron = fleet.start_cron(period=cron_period)
    api = fleet.provisioning
    api.status = 500
    began = time.monotonic()
    activations: list[Outcome] = []
    for member in staff:  # the detail page gives each member the CSRF token the Activate form needs
        member.request("detail", "GET", f"/subscribers/{pending[0]}/")
    turn = 0
    while time.monotonic() - began < form.provisioning_outage:
        member, subscriber = staff[turn % len(staff)], pending[turn % len(pending)]
        activations.append(member.request("activate", "POST", f"/subscribers/{subscriber}/activate/", {}))
        turn += 1
        hold(0.25)
    upstream_failures = [call for call in api.log() if call.status == 500]
    opened = upstream_failures[fail_max - 1].at if len(upstream_failures) >= fail_max else None
    # Failures before the breaker could first let a trial call through (half-open).
    before_trial = [call for call in upstream_failures if opened is None or call.at < opened + reset_timeout]
    still_pending = sum(1 for status in fleet.statuses(pending).values() if status == "pending")
    api.status = 201
    recovered = time.monotonic()
    admitted = max(recovered, (opened or recovered) + reset_timeout)  # the breaker lets calls through

    def all_active() -> bool:
        return set(fleet.statuses(pending).values()) == {"active"}

    wait_until(all_active, timeout=reset_timeout + 3 * cron_period + 60, interval=0.2, message="all active")
    activated = time.monotonic()
    keys_per_subscriber: dict[int, set[str]] = {}
    for call in api.log():
        keys_per_subscriber.setdefault(call.subscriber_id, set()).add(call.key)
    provisioned = api.provisioned()
    return {
        "activation_requests": len(activations),
        "activation_pods": len({o.served_by for o in activations if o.served_by}),
        "activation_statuses": sorted({o.status for o in activations}),
        "upstream_failures": len(upstream_failures),
        "upstream_failures_before_open": len(before_trial),
        "fail_max": fail_max,
        "pending": len(pending),
        "pending_at_the_end_of_the_outage": still_pending,
        "seconds_to_all_active_after_breaker_admits": activated - admitted,
        "seconds_to_all_active_after_recovery": activated - recovered,
        "cron_period": cron_period,
        "cron_runs": len(cron.runs),
        "provisioned_once": sum(1 for subscriber in pending if provisioned.get(subscriber) == 1),
        "provisioned_twice": sum(1 for count in provisioned.values() if count > 1),
        "keys_per_subscriber_max": max((len(keys) for keys in keys_per_subscriber.values()), default=0),
    }


# --- 4. Slow clients at one pod --------------------------------------------------------------------


def _drip(port: int, host: str, seconds: float, stop: threading.Event) -> None:
    """A client sending its request headers a line a second, then closing."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET /subscribers/ HTTP/1.1\r\nHost: {host}\r\n".encode())
        for n in range(int(seconds)):
            if stop.wait(1):
                return
            try:
                sock.sendall(f"X-Slow-{n}: {'x' * 10}\r\n".encode())
            except OSError:
                return


def _in_cluster_client(fleet: Fleet, pod, *, timeout: float) -> StaffMember:
    """A logged-in client talking to ``pod`` directly (no ingress), as another service would."""
    return StaffMember(
        port=pod.http_port,
        host=fleet.host,
        source_address="127.0.0.1",
        cookies=dict(fleet.staff()[0].cookies),
        timeout=timeout,
        forwarded_https=True,  # what the ingress adds; an in-cluster client sends it itself here
    )


def _under_pressure(fleet: Fleet, pod, seconds: float) -> dict:
    """Probe ``pod`` as the kubelet does, once a second, while another client asks it for pages
    (giving up on each after 2 s); the figures of both."""
    container = pod.container
    probes: list[tuple[str, bool, int, float]] = []
    others: list[Outcome] = []
    stop = threading.Event()
    client = _in_cluster_client(fleet, pod, timeout=2)

    def ask_for_pages() -> None:
        while not stop.is_set():
            others.append(client.request("list", "GET", "/subscribers/"))
            stop.wait(0.5)

    asking = threading.Thread(target=ask_for_pages, daemon=True)
    asking.start()
    began = time.monotonic()
    try:
        while time.monotonic() - began < seconds:
            tick = time.monotonic()
            for kind in ("liveness", "readiness"):
                probe = getattr(container, kind)
                probes.append((kind, *http_probe(pod.port(probe.port), probe)))
            hold(max(0.0, 1.0 - (time.monotonic() - tick)))
    finally:
        stop.set()
        asking.join(timeout=15)
    readiness = [(ok, took) for kind, ok, _status, took in probes if kind == "readiness"]
    return {
        "seconds": seconds,
        "liveness_probes": sum(1 for kind, *_ in probes if kind == "liveness"),
        "liveness_missed": sum(1 for kind, ok, *_ in probes if kind == "liveness" and not ok),
        "readiness_probes": len(readiness),
        "readiness_over_deadline": sum(
            1 for ok, took in readiness if not ok or took > container.readiness.timeout
        ),
        "readiness_slowest_seconds": max((took for _ok, took in readiness), default=0.0),
        "other_requests": len(others),
        "other_requests_served_within_2s_share": sum(1 for o in others if o.ok) / len(others)
        if others
        else 0.0,
        "restarts": fleet.controller.restarts(),
    }


def slow_clients(fleet: Fleet, form: Form, *, clients: int = 20) -> dict:
    """``clients`` connections dripping request headers (a line a second) straight at one pod."""
    pod = fleet.controller.pods[0]
    stop = threading.Event()
    drippers = [
        threading.Thread(
            target=_drip, args=(pod.http_port, fleet.host, form.slow_clients + 2, stop), daemon=True
        )
        for _ in range(clients)
    ]
    for thread in drippers:
        thread.start()
    try:
        figures = _under_pressure(fleet, pod, form.slow_clients)
    finally:
        stop.set()
        for thread in drippers:
            thread.join(timeout=10)
    return {"slow_clients": clients, **figures}


def slow_activations(fleet: Fleet, form: Form, *, upstream_delay: float = 5.0) -> dict:
    """Every request thread of one pod busy with activations the provisioning API is slow to answer."""
    pod = fleet.controller.pods[0]
    pending = list(fleet.seeded["pending"])
    threads = int(pod.env["WEB_CONCURRENCY"]) * int(pod.env["GUNICORN_THREADS"])
    clients = [_in_cluster_client(fleet, pod, timeout=upstream_delay + 30) for _ in range(threads + 4)]
    for client in clients:  # each takes the Activate form's CSRF token from a detail page
        client.request("detail", "GET", f"/subscribers/{pending[0]}/")
    fleet.provisioning.delay = upstream_delay
    stop = threading.Event()
    activations: list[Outcome] = []

    queue = iter(pending)  # each activation a subscriber still pending: every one waits on the API
    queue_lock = threading.Lock()

    def activate(client: StaffMember) -> None:
        while not stop.is_set():
            with queue_lock:
                subscriber = next(queue, None)
            if subscriber is None:
                return
            activations.append(client.request("activate", "POST", f"/subscribers/{subscriber}/activate/", {}))

    workers = [threading.Thread(target=activate, args=(client,), daemon=True) for client in clients]
    for thread in workers:
        thread.start()
    try:
        figures = _under_pressure(fleet, pod, form.slow_clients)
    finally:
        stop.set()
        fleet.provisioning.delay = 0.0
        for thread in workers:
            thread.join(timeout=upstream_delay + 35)
    return {
        "request_threads": threads,
        "activating_clients": len(clients),
        "slow_activations": len(activations),
        **figures,
    }
