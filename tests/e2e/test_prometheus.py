"""Prometheus scraping the platform under gunicorn, with the shipped alert rules and dashboard.

One production-like deployment for the module: its own PostgreSQL and Redis (so they can be
stopped), a local provisioning API the test controls, gunicorn with production settings and four
workers, a prober doing what the kubelet does, and a real Prometheus scraping ``/metrics`` with the
bearer token every second and evaluating the rules of ``deploy/prometheus/rules/`` every second,
their ``for:`` durations divided by 60. Everything is asserted through Prometheus' HTTP API.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psycopg
import pytest

from tests.e2e.app_server import AppServer, manage, production_server
from tests.e2e.dashboard import (
    grafana_rate_interval,
    label_values_call,
    load_dashboard,
    panel_queries,
    selectors,
    substitute,
    variable_queries,
)
from tests.e2e.kubelet import Kubelet
from tests.e2e.prometheus import (
    SCRAPE_INTERVAL_SECONDS,
    TARGET_UPDATE_SECONDS,
    TIME_COMPRESSION,
    PrometheusServer,
    Sample,
    job_name_from_service_monitor,
    parse_duration,
    prometheus_binary,
    shipped_alert_names,
)
from tests.e2e.web_client import StaffSession
from tests.servers import PostgresServer, RedisServer, subprocess_env, wait_until
from tests.upstream import Upstream

pytestmark = [pytest.mark.e2e, pytest.mark.servers, pytest.mark.slow]

JOB = job_name_from_service_monitor()
# What the prometheus-operator's discovery attaches to each pod's series in the cluster.
TARGET_LABELS = {"namespace": "dotmac-production", "pod": "dotmac-platform-e2e-0"}
TENANTS = {"alpha": "Alpha Fibre", "beta": "Beta Broadband", "gamma": "Gamma Networks"}
# Enough tenants to fill the default cap of tenant labels (METRICS_TENANT_LABEL_LIMIT, 1,000).
ALL_TENANTS = {**TENANTS, **{f"isp-{n:04d}": f"ISP {n}" for n in range(len(TENANTS) + 1, 1001)}}
STAFF = ("gamma-staff", "gamma-staff-password-4711")
PLAN = "Home 250"
BREAKER = "provisioning"
# Prometheus scrapes and evaluates every second; an alert with "for: 1s" needs a few evaluations.
DEADLINE = 15.0

SEED = """
import json, os
from datetime import timedelta
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.utils import timezone
from django.utils.crypto import get_random_string
from apps.subscribers.models import ServicePlan
from apps.tenants.models import Membership, Tenant

seed = json.loads(os.environ["E2E_SEED"])
tenants = Tenant.objects.bulk_create([Tenant(slug=slug, name=name) for slug, name in seed["tenants"].items()])
tenant = Tenant.objects.get(slug=seed["staff_tenant"])
ServicePlan.objects.create(
    tenant=tenant, name=seed["plan"], download_mbps=250, upload_mbps=50, monthly_price="39.00"
)
user = get_user_model().objects.create_user(username=seed["staff"][0], password=seed["staff"][1])
Membership.objects.create(user=user, tenant=tenant)
# A logged-in member of every tenant: a session row each, as django.contrib.auth.login() stores it.
User = get_user_model()
members = User.objects.bulk_create(
    [User(username=f"member-{t.slug}", password=make_password(None)) for t in tenants]
)
Membership.objects.bulk_create([Membership(user=m, tenant=t) for m, t in zip(members, tenants)])
store, cookies, sessions = SessionStore(), {}, []
expiry = timezone.now() + timedelta(days=1)
for member, t in zip(members, tenants):
    key = get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789")
    data = {
        SESSION_KEY: str(member.pk),
        BACKEND_SESSION_KEY: settings.AUTHENTICATION_BACKENDS[-1],
        HASH_SESSION_KEY: member.get_session_auth_hash(),
    }
    sessions.append(
        Session(session_key=key, session_data=store.encode(data), expire_date=expiry)
    )
    cookies[t.slug] = f"{settings.SESSION_COOKIE_NAME}={key}"
Session.objects.bulk_create(sessions)
print(json.dumps(cookies))
"""


@dataclass
class Deployment:
    postgres: PostgresServer
    redis: RedisServer
    upstream: Upstream
    app: AppServer
    kubelet: Kubelet
    prometheus: PrometheusServer
    member_cookies: dict[str, str]  # by tenant slug: the Cookie header of a logged-in member

    def member(self, slug: str) -> dict[str, str]:
        return {"Cookie": self.member_cookies[slug]}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, collected_static) -> Iterator[Deployment]:
    prometheus_binary()  # fail first, before any server starts, when Prometheus is missing
    root = tmp_path_factory.mktemp("e2e")
    with contextlib.ExitStack() as stack:
        postgres = PostgresServer().start()
        stack.callback(postgres.destroy)
        env = subprocess_env(DATABASE_URL=postgres.url("postgres"), DATA_DIR=str(root / "data"))
        manage(env, "migrate", "--noinput", "-v0")
        redis = RedisServer().start()
        stack.callback(redis.destroy)
        upstream = Upstream().start()
        stack.callback(upstream.stop)

        app = production_server(
            {**env, "REDIS_URL": redis.url},
            run_dir=root / "app",
            static_root=collected_static,
            provisioning_url=upstream.url,
        )
        # Sessions are signed with the server's secret key.
        seed = {"tenants": ALL_TENANTS, "staff_tenant": "gamma", "plan": PLAN, "staff": STAFF}
        seed_env = {**env, "E2E_SEED": json.dumps(seed), "DJANGO_SECRET_KEY": app.secrets.django_secret_key}
        member_cookies = json.loads(manage(seed_env, "shell", "-c", SEED).stdout.strip().splitlines()[-1])
        app.start()
        stack.callback(app.stop)
        kubelet = Kubelet(app).start()
        stack.callback(kubelet.stop)

        prometheus = PrometheusServer(
            root=root / "prometheus",
            job=JOB,
            target=f"127.0.0.1:{app.port}",
            bearer_token=app.secrets.metrics_bearer_token,
            target_labels=TARGET_LABELS,
        ).start()
        stack.callback(prometheus.stop)
        yield Deployment(postgres, redis, upstream, app, kubelet, prometheus, member_cookies)


# --- helpers ----------------------------------------------------------------------------------


def values_by(samples: list[Sample], label: str) -> dict[str, float]:
    return {sample.labels.get(label, ""): sample.value for sample in samples}


def single_value(prometheus: PrometheusServer, expr: str) -> float | None:
    samples = prometheus.query(expr)
    assert len(samples) <= 1, f"{expr}: expected one series, got {samples}"
    return samples[0].value if samples else None


def wait_for_value(
    prometheus: PrometheusServer, expr: str, expected: float, *, timeout: float = DEADLINE
) -> None:
    prometheus.wait_for(
        lambda: single_value(prometheus, expr) == expected,
        timeout=timeout,
        message=f"{expr} == {expected}",
        last=lambda: prometheus.query(expr),
    )


def firing(prometheus: PrometheusServer, alert: str, **labels: str) -> list[dict]:
    return [
        item
        for item in prometheus.active_alerts(alert)
        if item["state"] == "firing" and all(item["labels"].get(k) == v for k, v in labels.items())
    ]


def wait_for_alert(prometheus: PrometheusServer, alert: str, *, active: bool, **labels: str) -> None:
    def reached() -> bool:
        if active:
            return bool(firing(prometheus, alert, **labels))
        return not [
            item
            for item in prometheus.active_alerts(alert)
            if all(item["labels"].get(k) == v for k, v in labels.items())
        ]

    prometheus.wait_for(
        reached,
        timeout=DEADLINE,
        message=f"{alert} {labels} to be {'firing' if active else 'resolved'}",
        last=lambda: prometheus.active_alerts(alert),
    )


def assert_scraped(prometheus: PrometheusServer) -> None:
    """The latest scrape succeeded (polled: one scrape that missed its 1 s timeout is not the point)."""
    wait_for_value(prometheus, f'up{{job="{JOB}"}}', 1)
    [target] = prometheus.api("targets")["activeTargets"]
    assert target["health"] == "up" and not target["lastError"], target


def rule_query(prometheus: PrometheusServer, alert: str) -> str:
    """The expression of a loaded alerting rule: the shipped text, not a copy in this test."""
    return prometheus.alerting_rules()[alert]["query"]


# --- the target and the rules -------------------------------------------------------------------


def test_target_is_up_once_service_discovery_has_run(deployment):
    """Prometheus hands discovered targets to the scrapers every 5 s; the first scrape follows."""
    prometheus = deployment.prometheus
    allowed = TARGET_UPDATE_SECONDS + 2 * SCRAPE_INTERVAL_SECONDS

    def first_up() -> float | None:
        series = prometheus.api("query", query=f'up{{job="{JOB}"}}[10m]')["result"]
        ups = [float(t) for item in series for t, value in item["values"] if value == "1"]
        return min(ups) if ups else None

    remaining = prometheus.started_at + allowed - time.time()
    prometheus.wait_for(
        lambda: first_up() is not None,
        timeout=max(remaining, 0.5),
        message="up == 1",
        last=lambda: prometheus.query("up"),
    )
    assert first_up() - prometheus.started_at <= allowed
    [target] = prometheus.api("targets")["activeTargets"]
    assert target["health"] == "up", target
    assert target["labels"] == {"job": JOB, "instance": f"127.0.0.1:{deployment.app.port}", **TARGET_LABELS}
    # PlatformDown may have been pending before the first scrape (absent(up)); not any more.
    wait_for_alert(prometheus, "PlatformDown", active=False)


def test_prometheus_loads_every_shipped_alert_rule_with_compressed_durations(deployment):
    loaded = deployment.prometheus.alerting_rules()

    assert set(loaded) == shipped_alert_names()
    unhealthy = {name: rule.get("lastError") for name, rule in loaded.items() if rule["health"] == "err"}
    assert not unhealthy
    for name, rule in loaded.items():
        assert 1 <= rule["duration"] <= 5, (name, rule["duration"])  # 1m..5m, compressed


# --- traffic per tenant -----------------------------------------------------------------------


def test_requests_of_two_tenants_are_counted_per_tenant(deployment):
    app, prometheus = deployment.app, deployment.prometheus
    sent = {"alpha": 37, "beta": 23}
    requests = [tenant for tenant, count in sent.items() for _ in range(count)]

    # From several clients at once, as an ingress would: the workers share the load.
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(
            pool.map(lambda tenant: app.request("GET", "/", headers=deployment.member(tenant)), requests)
        )
    assert [answer.status for answer in answers] == [200] * len(requests)
    served_by = {entry["pid"] for entry in app.access_log() if entry["path"] == "/"}
    assert len(served_by) >= 2, "one worker served everything: the sum across workers is not exercised"

    expr = f'sum by (tenant) (http_tenant_requests_total{{job="{JOB}", tenant=~"alpha|beta"}})'
    prometheus.wait_for(
        lambda: values_by(prometheus.query(expr), "tenant") == sent,
        timeout=DEADLINE,
        message="per-tenant request counts to reach what was sent",
        last=lambda: values_by(prometheus.query(expr), "tenant"),
    )
    by_class = prometheus.query(f'http_tenant_requests_total{{job="{JOB}", tenant=~"alpha|beta"}}')
    assert {(sample.labels["tenant"], sample.labels["status_class"]) for sample in by_class} == {
        ("alpha", "2xx"),
        ("beta", "2xx"),
    }
    # The route's series carry no tenant.
    home = prometheus.query(f'http_requests_total{{job="{JOB}", route="home"}}')
    assert home and all(
        set(sample.labels) >= {"method", "status"} and "tenant" not in sample.labels for sample in home
    )


def blocked_queries(postgres: PostgresServer) -> int:
    with psycopg.connect(postgres.url("postgres"), autocommit=True) as connection:
        return connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        ).fetchone()[0]


@contextlib.contextmanager
def subscribers_locked(postgres: PostgresServer) -> Iterator[Callable[[], None]]:
    """The subscriber table locked by another transaction; yields what cancels the queries waiting."""
    with psycopg.connect(postgres.url("postgres")) as locker:
        locker.execute("LOCK TABLE subscribers_subscriber IN ACCESS EXCLUSIVE MODE")

        def cancel_waiting() -> None:
            with psycopg.connect(postgres.url("postgres"), autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                )

        try:
            yield cancel_waiting
        finally:
            locker.rollback()


def failed_slow_requests(deployment: Deployment, slug: str, count: int, *, held: float) -> list[int]:
    """``count`` subscriber list requests of a member of ``slug`` that wait behind a lock for ``held``
    seconds or more, then fail (their queries cancelled: a 500); their statuses. More requests than
    the server serves at once: those queued are held in a later round."""
    app, postgres = deployment.app, deployment.postgres
    with subscribers_locked(postgres) as cancel_waiting, ThreadPoolExecutor(max_workers=count) as pool:
        waiting = [
            pool.submit(app.request, "GET", "/subscribers/", headers=deployment.member(slug))
            for _ in range(count)
        ]
        while not all(future.done() for future in waiting):
            wait_until(
                lambda: blocked_queries(postgres) or all(future.done() for future in waiting),
                timeout=30,
                message="requests waiting on the lock",
            )
            time.sleep(held)  # how long the fault lasts, not a wait for something
            cancel_waiting()
        return [future.result().status for future in waiting]


def test_the_thousandth_tenant_gets_its_own_error_ratio_and_p95(deployment):
    """Every tenant up to the default cap keeps its label; the per-tenant error-ratio and latency
    queries and alerts work for the 1,000th tenant admitted."""
    app, prometheus = deployment.app, deployment.prometheus
    target = max(ALL_TENANTS)  # admitted last: every other tenant's member sends a request first
    assert len(ALL_TENANTS) == 1000
    with ThreadPoolExecutor(max_workers=8) as pool:
        first = list(
            pool.map(
                lambda slug: app.request("GET", "/", headers=deployment.member(slug)).status,
                [slug for slug in ALL_TENANTS if slug != target],
            )
        )
    assert set(first) == {200}
    assert app.request("GET", "/subscribers/", headers=deployment.member(target)).status == 200
    tenants = f'count(count by (tenant) (http_tenant_requests_total{{job="{JOB}"}}))'
    wait_for_value(prometheus, tenants, 1000)
    assert not prometheus.query(f'http_tenant_requests_total{{job="{JOB}", tenant="other"}}')

    # A failure first, seen by a scrape, so that the 5xx series exists before the rates below.
    assert failed_slow_requests(deployment, target, 1, held=0) == [500]
    wait_for_value(
        prometheus, f'http_tenant_requests_total{{job="{JOB}", tenant="{target}", status_class="5xx"}}', 1
    )
    for _ in range(20):
        assert app.request("GET", "/subscribers/", headers=deployment.member(target)).status == 200
    assert failed_slow_requests(deployment, target, 20, held=1.5) == [500] * 20

    selector = f'job="{JOB}", tenant="{target}"'
    error_ratio = (
        f'sum(rate(http_tenant_requests_total{{{selector}, status_class="5xx"}}[5m]))'
        f" / sum(rate(http_tenant_requests_total{{{selector}}}[5m]))"
    )
    buckets = f"http_tenant_request_duration_seconds_bucket{{{selector}}}"
    p95 = f"histogram_quantile(0.95, sum by (le) (rate({buckets}[5m])))"
    prometheus.wait_for(
        lambda: (
            (single_value(prometheus, error_ratio) or 0) > 0.4 and (single_value(prometheus, p95) or 0) > 1
        ),
        timeout=DEADLINE,
        message=f"the error ratio and p95 of {target} to show the failures",
        last=lambda: (prometheus.query(error_ratio), prometheus.query(p95)),
    )
    # 21 of 42 requests failed, 20 of them after 1.5 s: p95 in the (1 s, 2.5 s] bucket.
    assert single_value(prometheus, error_ratio) == pytest.approx(21 / 42, abs=0.1)
    assert single_value(prometheus, p95) <= 2.5
    for alert in ("HighErrorRate", "HighLatency"):
        wait_for_alert(prometheus, alert, active=True, tenant=target)
    assert not firing(prometheus, "HighErrorRate", tenant="alpha")


# --- circuit breaker ----------------------------------------------------------------------------


def breaker_status(app: AppServer) -> dict:
    answer = app.request(
        "GET",
        "/api/v1/circuit-breakers/status",
        headers={"Authorization": f"Bearer {app.secrets.ops_api_token}"},
    )
    assert answer.status == 200, answer.text
    return {item["name"]: item for item in json.loads(answer.body)["breakers"]}


def test_open_breaker_fires_circuit_breaker_open_and_reset_resolves_it(deployment):
    app, prometheus, upstream = deployment.app, deployment.prometheus, deployment.upstream
    staff = StaffSession(app)
    staff.login(*STAFF)
    form = staff.get("/subscribers/new/")
    plan_id = re.search(r'<option value="(\d+)"[^>]*>\s*' + re.escape(PLAN), form.text).group(1)
    created = staff.post_form(
        "/subscribers/new/", {"name": "Hedy Lamarr", "email": "hedy@example.net", "plan": plan_id}
    )
    detail = staff.redirect_path(created)
    activate = detail + "activate/"

    upstream.status = 503  # the provisioning API is failing
    attempts = 0
    while breaker_status(app).get(BREAKER, {}).get("state") != "open":
        attempts += 1
        assert attempts <= 10, f"the breaker did not open: {breaker_status(app)}"
        answer = staff.post_form(activate, {})
        assert staff.redirect_path(answer) == detail
        page = staff.get(detail)
        assert any("temporarily unavailable" in message for message in staff.messages(page)), page.text
        assert "status-pending" in page.text
    fail_max = breaker_status(app)[BREAKER]["fail_max"]
    assert attempts == fail_max == upstream.request_count
    # Open: the next activation fails fast, without calling the upstream.
    staff.post_form(activate, {})
    assert upstream.request_count == fail_max

    state = f'circuit_breaker_state{{job="{JOB}", breaker="{BREAKER}"}}'
    wait_for_value(prometheus, state, 1)
    wait_for_alert(prometheus, "CircuitBreakerOpen", active=True, breaker=BREAKER)
    [alert] = firing(prometheus, "CircuitBreakerOpen", breaker=BREAKER)
    assert alert["labels"]["severity"] == "warning"
    assert BREAKER in alert["annotations"]["summary"]

    upstream.status = 200
    reset = app.request(
        "POST",
        f"/api/v1/circuit-breakers/{BREAKER}/reset",
        headers={"Authorization": f"Bearer {app.secrets.ops_api_token}"},
    )
    assert reset.status == 200, reset.text
    assert json.loads(reset.body)["state"] == "closed"

    wait_for_value(prometheus, state, 0)
    wait_for_alert(prometheus, "CircuitBreakerOpen", active=False, breaker=BREAKER)
    # Closed again: activation goes through to the (recovered) provisioning API.
    staff.post_form(activate, {})
    assert "status-active" in staff.get(detail).text
    assert upstream.request_count == fail_max + 1


# --- the Grafana dashboard --------------------------------------------------------------------


def test_every_dashboard_expression_evaluates_against_live_prometheus(deployment):
    prometheus = deployment.prometheus
    dashboard = load_dashboard()
    queries = list(panel_queries(dashboard))
    assert queries, "the dashboard has no Prometheus query"

    # Traffic of every tenant now, so that the short rate windows below cover some.
    for tenant in TENANTS:
        assert deployment.app.request("GET", "/", headers=deployment.member(tenant)).status == 200
    # The tenant variable, as Grafana fills its drop-down (label_values: the label values API).
    [(name, query)] = variable_queries(dashboard).items()
    selector, label = label_values_call(query)
    prometheus.wait_for(
        lambda: set(TENANTS) <= set(prometheus.api(f"label/{label}/values", **{"match[]": selector})),
        timeout=DEADLINE,
        message=f"every tenant in the {name} variable",
        last=lambda: prometheus.api(f"label/{label}/values", **{"match[]": selector}),
    )

    step = 2.0
    rate_window = grafana_rate_interval(step, SCRAPE_INTERVAL_SECONDS)
    # Until the latest scrape is a rate window past the traffic, the newest series may hold a
    # single sample, and a rate of one sample is no sample.
    sent_at = time.time()
    prometheus.wait_for(
        lambda: single_value(prometheus, f'timestamp(up{{job="{JOB}"}})') > sent_at + rate_window + 1,
        timeout=DEADLINE,
        message="scrapes a rate window after the traffic",
        last=lambda: prometheus.query(f'timestamp(up{{job="{JOB}"}})'),
    )
    end = time.time()
    start = end - 120
    rate_interval = f"{rate_window:g}s"
    grafana_globals = {
        "__rate_interval": rate_interval,
        "__interval": f"{step:g}s",
        "__range": f"{end - start:.0f}s",
    }
    failures, empty = [], []
    # "All" (the variable's allValue) and one tenant picked in the drop-down.
    for tenant_choice in (".*", "alpha"):
        for panel in queries:
            expr = substitute(panel.expr, {**grafana_globals, name: tenant_choice})
            try:
                result = prometheus.query_range(expr, start=start, end=end, step=step)
            except AssertionError as exc:
                failures.append(f"{panel.panel} [{panel.ref_id}]: {exc}")
                continue
            # Where every selector of the panel matches series, the panel must show data.
            if not result and all(
                prometheus.query_range(selector, start=start, end=end, step=step)
                for selector in selectors(expr)
            ):
                empty.append(f"{panel.panel}: {expr}")
    assert not failures, "\n".join(failures)
    assert not empty, "panels without data although their series exist:\n" + "\n".join(empty)


# --- dependencies down ------------------------------------------------------------------------


def check_status(check: str) -> str:
    """The worst result of one readiness check across its components (``database:default``...)."""
    return f'min(health_check_status{{job="{JOB}", check=~"{check}(:.+)?"}})'


def dependency(deployment: Deployment, check: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """How to stop and restart the server behind a readiness check."""
    server = {"cache": deployment.redis, "database": deployment.postgres}[check]
    return server.stop, server.restart


@contextlib.contextmanager
def outage(deployment: Deployment, check: str) -> Iterator[float]:
    """Stop a dependency until the readiness metric of ``check`` shows it degraded (0.5: a shared
    dependency warns, never fails); restart after."""
    prometheus = deployment.prometheus
    stop, restart = dependency(deployment, check)
    wait_for_value(prometheus, check_status(check), 1)
    stopped_at = time.monotonic()
    stop()
    try:
        wait_for_value(prometheus, check_status(check), 0.5)
        yield stopped_at
    finally:
        restart()
    wait_for_value(prometheus, check_status(check), 1, timeout=30)


@pytest.mark.parametrize(("check", "other_check"), [("cache", "database"), ("database", "cache")])
def test_stopped_dependency_shows_as_a_degraded_check_while_ready_stays_200(deployment, check, other_check):
    prometheus, kubelet = deployment.prometheus, deployment.kubelet

    with outage(deployment, check) as stopped_at:
        # Shared by every pod: readiness must not take them all out of service.
        assert set(kubelet.seen("/ready", since=stopped_at)) == {200}
        assert set(kubelet.seen("/live", since=stopped_at)) == {200}
        # Scrapes need neither Redis nor the database: the target is up; the other check passes.
        assert_scraped(prometheus)
        assert single_value(prometheus, check_status(other_check)) == 1


@pytest.mark.parametrize(
    ("check", "alert"),
    [
        pytest.param("cache", "RedisConnectionFailures"),
        pytest.param("database", "DatabaseConnectionFailures"),
    ],
)
def test_stopped_dependency_makes_its_alert_expression_return_a_series(deployment, check, alert):
    prometheus = deployment.prometheus
    rules = prometheus.alerting_rules()
    # The previous outage of this module may still be in the last scrape: let it settle first.
    wait_until(
        lambda: not prometheus.query(rules[alert]["query"]),
        timeout=15,
        message=f"{alert} quiet before the outage",
    )
    quiet = {name for name, rule in rules.items() if not prometheus.query(rule["query"])}
    assert alert in quiet

    with outage(deployment, check):
        # Evaluated now, while the readiness metric shows the failure.
        returning = {name for name in quiet if prometheus.query(rules[name]["query"])}
        assert alert in returning, returning
        # The dependency's own alert fires for this pod; alerts grouped without a pod label
        # (CircuitBreakerOpen) that may also fire meanwhile are not this test's subject.
        wait_for_alert(prometheus, alert, active=True, pod=TARGET_LABELS["pod"])
        assert_scraped(prometheus)
    wait_for_alert(prometheus, alert, active=False)


def test_stopped_server_fires_platform_down(deployment):
    prometheus = deployment.prometheus
    expected_for = parse_duration("1m") / TIME_COMPRESSION
    assert prometheus.alerting_rules()["PlatformDown"]["duration"] == expected_for

    deployment.app.stop()

    wait_for_value(prometheus, f'up{{job="{JOB}"}}', 0)
    wait_for_alert(prometheus, "PlatformDown", active=True, job=JOB)
    assert single_value(prometheus, rule_query(prometheus, "PlatformDown")) == 0
