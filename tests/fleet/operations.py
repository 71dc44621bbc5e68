"""The routine operations under load: rolling update, node drain, scaling, a killed pod; POSTs on
upstream connections idle for about the shorter keep-alive timeout; the longest request the app
allows, sent to a pod at the last moment before the ingress learns of its deletion; an expand
migration (a column added, then backfilled) behind a long transaction while the pods serve.

Each function runs one operation on a started :class:`~tests.fleet.cluster.Fleet` of the manifests'
replica count, with staff loading the site through the ingress before, during and after it, and
returns its figures (what ``make fleet`` prints and docs/RELIABILITY.md quotes); the tests in
``test_operations.py`` hold them to their targets. The durations come from the scenario's
:class:`~tests.fleet.scenarios.Form`.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from tests.fleet.budget import KeepAlive, TerminationBudget
from tests.fleet.cluster import Fleet
from tests.fleet.deployment import Deployment
from tests.fleet.load import Outcome, StaffMember, pages
from tests.fleet.pods import Pod
from tests.fleet.scenarios import Form, hold, window
from tests.servers import wait_until


def posts_in_database(fleet: Fleet, outcomes: list[Outcome]) -> dict:
    """What became of the "new subscriber" POSTs: each acknowledged one in the database exactly
    once, none applied twice (acknowledged or not)."""
    creates = [o for o in outcomes if o.kind == "create"]
    rows = fleet.subscriber_rows([o.email for o in creates]) if creates else {}
    acknowledged = [o for o in creates if o.created_id]
    return {
        "posts": len(creates),
        "acknowledged_posts": len(acknowledged),
        "acknowledged_lost": sum(1 for o in acknowledged if rows[o.email] == 0),
        "applied_twice": sum(1 for count in rows.values() if count > 1),
        # A POST cut off with its pod: it may have committed before the pod died, or not.
        "unacknowledged_applied": sum(1 for o in creates if not o.created_id and rows[o.email] == 1),
    }


def health_version(fleet: Fleet, pod: Pod) -> str:
    """The version a pod's ``/health`` reports to an authorised caller (on the probe port)."""
    probe = pod.container.readiness
    connection = http.client.HTTPConnection("127.0.0.1", pod.port(probe.port), timeout=5)
    try:
        headers = {"Authorization": f"Bearer {fleet.secrets['OPS_API_TOKEN']}"}
        connection.request("GET", "/health", headers=headers)
        return json.loads(connection.getresponse().read())["version"]
    finally:
        connection.close()


def _under_load(fleet: Fleet, form: Form, operation: Callable[[Deployment], dict]) -> dict:
    """Staff load before, during and after ``operation``; the figures of every page request."""
    deployment = Deployment(fleet)
    load = fleet.load().start()
    began = time.monotonic()
    try:
        hold(form.operation_baseline)
        started = time.monotonic()
        figures = operation(deployment)
        finished = time.monotonic()
        hold(form.operation_after)
    finally:
        outcomes = load.stop()
    deployment.wait_stopped(timeout=fleet.web.termination_grace_seconds + 10)
    measured = pages(outcomes)
    endpoints = [len(ports) for at, ports in fleet.ingress.history if at >= started]
    return {
        "propagation_lag": fleet.propagation_lag,
        "operation_seconds": finished - started,
        **window(outcomes, began, float("inf")),
        "failed": sum(1 for o in measured if not o.ok),
        **posts_in_database(fleet, outcomes),
        **deployment.figures(),
        "restarts": fleet.controller.restarts(),
        "fewest_endpoints": min(endpoints, default=len(fleet.ingress.endpoints)),
        **figures,
        "_outcomes": outcomes,
    }


# --- 1. Rolling update -----------------------------------------------------------------------------


def rolling_update(fleet: Fleet, form: Form, *, version: str = "fleet-2") -> dict:
    def roll(deployment: Deployment) -> dict:
        deployment.rollout(version, timeout=form.operation_timeout)
        deployment.wait_settled(timeout=fleet.propagation_lag + 30)
        pods = deployment.pods()
        return {
            "max_surge": fleet.web.max_surge,
            "max_unavailable": fleet.web.max_unavailable,
            "versions_reported": sorted(health_version(fleet, pod) for pod in pods),
            "pods_at_the_end": len(pods),
        }

    return _under_load(fleet, form, roll)


# --- 2. Node drain ---------------------------------------------------------------------------------


def node_drain(fleet: Fleet, form: Form, *, evicted: int = 2) -> dict:
    def drain(deployment: Deployment) -> dict:
        node = deployment.pods()[:evicted]
        deployment.drain(node, timeout=form.operation_timeout)
        deployment.wait_settled(timeout=fleet.propagation_lag + 30)
        return {
            "evicted": evicted,
            "pdb_min_available": fleet.web.pdb_min_available,
            "evictions_refused": deployment.evictions_refused,
        }

    return _under_load(fleet, form, drain)


# --- 3. Scale out and back in ----------------------------------------------------------------------


def scale_out_and_in(fleet: Fleet, form: Form, *, factor: int = 2) -> dict:
    def scale(deployment: Deployment) -> dict:
        replicas = deployment.replicas
        deployment.scale(replicas * factor)
        deployment.wait_settled(timeout=form.operation_timeout)
        scaled_out = time.monotonic()
        hold(form.scaled_out_hold)
        deployment.scale(replicas)
        deployment.wait_settled(timeout=fleet.propagation_lag + 30)
        return {"replicas": replicas, "scaled_to": replicas * factor, "scaled_out_at": scaled_out}

    return _under_load(fleet, form, scale)


# --- 4. kill -9 of one pod -------------------------------------------------------------------------


def _activations_in_flight(fleet: Fleet, count: int, upstream_delay: float) -> tuple[list, list[Outcome]]:
    """``count`` staff pressing Activate through the ingress while the provisioning API takes
    ``upstream_delay`` to answer: requests certain to be in flight on their pods for that long.
    Returns the threads and the list their outcomes go to, once every call reached the API."""
    fleet.provisioning.delay = upstream_delay
    outcomes: list[Outcome] = []
    members = [fleet.staff()[n % fleet.staff_count] for n in range(count)]
    pending = fleet.seeded["pending"][:count]

    def activate(member: StaffMember, subscriber: int) -> None:
        member.request("detail", "GET", f"/subscribers/{subscriber}/")  # the Activate form's CSRF token
        outcomes.append(member.request("activate", "POST", f"/subscribers/{subscriber}/activate/", {}))

    threads = [threading.Thread(target=activate, args=pair, daemon=True) for pair in zip(members, pending)]
    for thread in threads:
        thread.start()
    in_flight = fleet.provisioning.in_progress
    wait_until(lambda: len(in_flight()) == count, timeout=30, interval=0.05, message="activations in flight")
    return threads, outcomes


def killed_pod(fleet: Fleet, form: Form, *, activations: int = 6, upstream_delay: float = 3.0) -> dict:
    """kill -9 of the pod holding the most activations in flight (slow upstream calls), under load."""
    startup = fleet.web.container.startup
    killed: dict = {}

    def kill(deployment: Deployment) -> dict:
        threads, activated = _activations_in_flight(fleet, activations, upstream_delay)
        calling = set(fleet.provisioning.in_progress())  # the pods' ports of their calls in flight
        pod = max(deployment.pods(), key=lambda pod: len(pod.local_ports() & calling))
        killed.update(pod=pod, in_flight=len(pod.local_ports() & calling), activated=activated)
        killed["at"] = pod.crash()
        before = len(fleet.controller.ready_times.get(pod.name, []))
        wait_until(
            lambda: len(fleet.controller.ready_times.get(pod.name, [])) > before,
            timeout=startup.initial_delay + startup.period * startup.failure_threshold + 30,
            interval=0.1,
            message=f"{pod.name} ready again",
        )
        deployment.wait_settled(timeout=fleet.propagation_lag + 30)
        for thread in threads:
            thread.join(timeout=upstream_delay + 60)
        fleet.provisioning.delay = 0.0
        return {
            "activations_in_flight_on_the_killed_pod": killed["in_flight"],
            "ready_again_after_seconds": fleet.controller.ready_times[pod.name][-1] - killed["at"],
            "startup_budget_seconds": startup.initial_delay + startup.period * startup.failure_threshold,
            "request_threads": int(pod.env["WEB_CONCURRENCY"]) * int(pod.env["GUNICORN_THREADS"]),
        }

    figures = _under_load(fleet, form, kill)
    address = f"127.0.0.1:{killed['pod'].http_port}"
    activated = [o for o in killed["activated"] if o.kind == "activate"]
    failed = [o for o in pages(figures["_outcomes"]) + activated if not o.ok]
    # In flight on it: sent to it before the kill, answered (or not) after.
    in_flight = [
        o for o in failed if address in o.served_by and o.started < killed["at"] <= o.started + o.seconds
    ]
    statuses = fleet.statuses(fleet.seeded["pending"][:activations])
    activated_ids = [int(o.path.split("/")[2]) for o in activated if o.ok]
    figures.update(
        failed=len(failed),
        failed_in_flight_on_the_killed_pod=len(in_flight),
        failed_otherwise=len(failed) - len(in_flight),
        failed_kinds=sorted({o.kind for o in failed}),
        failed_statuses=sorted({o.status for o in failed}),
        activations_acknowledged=len(activated_ids),
        activations_acknowledged_not_active=sum(1 for i in activated_ids if statuses[i] != "active"),
    )
    return figures


# --- 5. Keep-alive: POSTs on upstream connections idle for about the shorter timeout --------------


def upstream_connections(address: str, pod_port: int) -> set[int]:
    """Local ports of the established connections from ``address`` to ``pod_port`` (/proc/net/tcp)."""
    hex_address = socket.inet_aton(address)[::-1].hex().upper()
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state = line.split()[1:4]
        local_address, local_port = local.split(":")
        if local_address == hex_address and int(remote.split(":")[1], 16) == pod_port and state == "01":
            found.add(int(local_port, 16))
    return found


def idle_upstream_posts(fleet: Fleet, timeouts: KeepAlive, *, posts: int = 50, spread: float = 1.0) -> dict:
    """``posts`` lanes of the ingress (``Ingress.open_lanes``), each to one pod: a GET opens the lane's
    upstream connection, which then idles for a time from ``spread`` under the shorter keep-alive
    timeout to ``spread`` over it, then a "new subscriber" POST goes through the lane, all lanes at once."""
    pods = [pod.http_port for pod in fleet.controller.pods]
    addresses = [f"127.0.1.{n + 1}" for n in range(posts)]
    ports = fleet.ingress.open_lanes((pods[n % len(pods)], addresses[n]) for n in range(posts))
    cookies = fleet.staff()[0].cookies
    idles = [timeouts.shorter - spread + 2 * spread * n / max(1, posts - 1) for n in range(posts)]
    results: list[dict] = [{} for _ in range(posts)]

    def lane(n: int) -> None:
        member = StaffMember(ports[n], fleet.host, f"127.0.2.{n + 1}", dict(cookies))
        pod = pods[n % len(pods)]
        warm = member.request("create-form", "GET", "/subscribers/new/")
        opened = upstream_connections(addresses[n], pod)
        hold(max(0.0, warm.started + warm.seconds + idles[n] - time.monotonic()))
        email = f"idle-{n}@example.net"
        form = {"name": f"Idle {n}", "email": email, "plan": str(fleet.seeded["plan"])}
        post = member.request("create", "POST", "/subscribers/new/", form)
        used = upstream_connections(addresses[n], pod)
        results[n] = {"warm": warm, "post": post, "reused": bool(opened) and opened == used}

    threads = [threading.Thread(target=lane, args=(n,), daemon=True) for n in range(posts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeouts.shorter + spread + 60)
    sent = [result["post"] for result in results if result]
    under = [r for r, idle in zip(results, idles, strict=True) if r and idle < timeouts.shorter - 0.05]
    over = [r for r, idle in zip(results, idles, strict=True) if r and idle > timeouts.shorter + 0.05]
    return {
        "proxy_idle_timeout": timeouts.proxy_idle_timeout,
        "pod_keepalive": timeouts.pod_keepalive,
        "idle_seconds_from": idles[0],
        "idle_seconds_to": idles[-1],
        "warm_failed": sum(1 for result in results if result and not result["warm"].ok),
        "statuses": sorted({o.status for o in sent}),
        "bad_gateway": sum(1 for o in sent if o.status == 502),
        "failed": sum(1 for o in sent if not o.ok),
        "under_the_timeout_reused": sum(1 for r in under if r["reused"]),
        "under_the_timeout": len(under),
        "over_the_timeout_reused": sum(1 for r in over if r["reused"]),
        "over_the_timeout": len(over),
        **posts_in_database(fleet, sent),
    }


# --- 6. The longest request, sent to a pod being deleted at the last moment ------------------------


def _killed_at_the_deadline(pod: Pod) -> int | None:
    """Workers the pod's drain killed at the graceful deadline (its summary line), None if no line."""
    found = re.findall(r"(\d+) killed at the graceful deadline", pod.server.stderr_text())
    return int(found[-1]) if found else None


def longest_request_at_deletion(fleet: Fleet, budget: TerminationBudget) -> dict:
    """An activation waiting on a provisioning API slower than the breakers' request_timeout, sent to a
    pod just before its deletion reaches the ingress (through a lane to that pod: the last request the
    ingress may send it), while the pod drains."""
    pod = fleet.controller.pods[0]
    [lane] = fleet.ingress.open_lanes([(pod.http_port, "127.0.1.250")])
    member = StaffMember(
        lane, fleet.host, "127.0.2.250", dict(fleet.staff()[0].cookies), timeout=budget.grace_period + 30
    )
    subscriber = fleet.seeded["pending"][0]
    member.request("detail", "GET", f"/subscribers/{subscriber}/")  # the Activate form's CSRF token
    fleet.provisioning.delay = budget.longest_request + 5  # slower than any call may wait
    deployment = Deployment(fleet)
    deployment.delete(pod)
    deleted_at = deployment.deletions[-1].deleted_at
    hold(max(0.0, deleted_at + fleet.propagation_lag - 0.2 - time.monotonic()))
    activation = member.request("activate", "POST", f"/subscribers/{subscriber}/activate/", {})
    deployment.wait_stopped(timeout=fleet.web.termination_grace_seconds + 10)
    return {
        "propagation_lag": fleet.propagation_lag,
        "longest_request_seconds": budget.longest_request,
        "time_for_a_request_seconds": budget.time_for_a_request(propagation_lag=fleet.propagation_lag),
        "sent_after_deletion_seconds": activation.started - deleted_at,
        "request_seconds": activation.seconds,
        "status": activation.status,
        "subscriber_status": fleet.statuses([subscriber])[subscriber],
        "pod_stopped_after_seconds": deployment.deletions[-1].seconds,
        "workers_killed_at_the_graceful_deadline": _killed_at_the_deadline(pod),
        "grace_period_seconds": fleet.web.termination_grace_seconds,
    }


# --- 7. An expand migration behind a long transaction, while the pods serve -------------------------

MIGRATED_TABLE = "subscribers_subscriber"
BACKFILL_BATCH = 50


def _migrate_until_applied(job_env: dict[str, str], *, retry: float, deadline: float) -> list:
    """The migration Job's work, retried as the Job retries a failed pod: add a nullable column (an
    expand step: the code still running never names it) over a connection made as the Job's
    environment says (``PGOPTIONS`` may set ``lock_timeout``). Returns each attempt as
    (start, seconds, error or "")."""
    attempts = []
    while True:
        began = time.monotonic()
        try:
            with _job_connection(job_env) as connection:
                connection.execute(f"ALTER TABLE {MIGRATED_TABLE} ADD COLUMN fleet_contact text")
            attempts.append((began, time.monotonic() - began, ""))
            return attempts
        except psycopg.errors.LockNotAvailable as exc:
            attempts.append((began, time.monotonic() - began, type(exc).__name__))
        if time.monotonic() > deadline:
            raise TimeoutError(f"migration not applied after {len(attempts)} attempts")
        hold(retry)


def _job_connection(job_env: dict[str, str]) -> psycopg.Connection:
    return psycopg.connect(job_env["DATABASE_URL"], autocommit=True, options=job_env.get("PGOPTIONS", ""))


def lock_timeout_of(job_env: dict[str, str]) -> float:
    """The ``lock_timeout`` a connection of the Job gets, in seconds (0: none, wait for ever)."""
    with _job_connection(job_env) as connection:
        query = "SELECT extract(epoch FROM current_setting('lock_timeout')::interval)"
        return float(connection.execute(query).fetchone()[0])


def _backfill(fleet: Fleet) -> int:
    """Fill the new column in batches, a transaction each, so no batch holds row locks for long."""
    done = 0
    with fleet.database() as connection:
        while True:
            updated = connection.execute(
                f"UPDATE {MIGRATED_TABLE} SET fleet_contact = email WHERE id IN "
                f"(SELECT id FROM {MIGRATED_TABLE} WHERE fleet_contact IS NULL LIMIT {BACKFILL_BATCH})"
            ).rowcount
            if not updated:
                return done
            done += updated


def migration_behind_a_long_transaction(fleet: Fleet, form: Form, *, job_overlay: dict[str, str]) -> dict:
    """Under load: a transaction reads the subscribers table and stays open ``form.long_transaction``
    seconds; meanwhile the migration Job (its environment from the manifests, ``job_overlay`` on top)
    adds a column to it, retried every 3 s, then backfills it; the pods keep running the code before it."""
    job_env = {**fleet.migration_env, **job_overlay}
    lock_timeout = lock_timeout_of(job_env)
    load = fleet.load().start()
    began = time.monotonic()
    try:
        hold(form.operation_baseline)
        rows_before = fleet.subscriber_count()
        opened = time.monotonic()
        result: dict = {}

        def migrate() -> None:
            result["attempts"] = _migrate_until_applied(job_env, retry=3.0, deadline=opened + 120)

        migrating = threading.Thread(target=migrate, daemon=True)
        with fleet.database() as reader, reader.transaction():
            reader.execute(f"SELECT count(*) FROM {MIGRATED_TABLE}").fetchone()  # holds ACCESS SHARE
            migrating.start()
            hold(form.long_transaction)
        closed = time.monotonic()
        migrating.join(timeout=130)
        backfilled = _backfill(fleet)
        hold(form.operation_after)
    finally:
        outcomes = load.stop()
    attempts = result.get("attempts", [])
    blocked = pages(outcomes, opened, closed + 1)
    with fleet.database() as connection:
        left = connection.execute(f"SELECT count(*) FROM {MIGRATED_TABLE} WHERE fleet_contact IS NULL")
    return {
        "job_overlay": job_overlay,
        "lock_timeout_seconds": lock_timeout,
        "long_transaction_seconds": closed - opened,
        "attempts": len(attempts),
        "attempts_failed_fast": sum(1 for _start, _seconds, error in attempts if error),
        "slowest_attempt_seconds": max((seconds for _start, seconds, _error in attempts), default=0.0),
        "applied_after_the_transaction_seconds": (attempts[-1][0] + attempts[-1][1] - closed)
        if attempts
        else None,
        "rows_before": rows_before,
        "backfilled_rows": backfilled,
        # Created afterwards by the code still running, which knows nothing of the column: the next
        # release writes it and backfills again before a later one may rely on it (contract).
        "rows_created_since_without_it": left.fetchone()[0],
        **window(outcomes, began, float("inf")),
        "failed": sum(1 for o in pages(outcomes) if not o.ok),
        "slowest_page_while_blocked_seconds": max((o.seconds for o in blocked), default=0.0),
        **posts_in_database(fleet, outcomes),
    }
