"""The site the browser suites drive: Debian's Chromium, headless, through Playwright, against gunicorn.

The platform runs under gunicorn with production settings and serves HTTPS itself (a throwaway
certificate), because under production settings Django's CSRF check wants an ``https://`` origin.
The provisioning API is a local HTTP server the test starts and stops. Each person gets a browser
profile of their own, created empty for the test. The fixtures reach the suites through
``conftest.py``.

Screenshots are written to ``test-artifacts/screenshots/``; with ``UPDATE_SCREENSHOTS=1`` they also
replace the ones in ``docs/img/`` that the README shows.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.app_server import (
    PROJECT_DIR,
    AppServer,
    production_server,
)
from tests.servers import RedisServer
from tests.upstream import Upstream

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # tests run as root in CI, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}
ARTIFACTS_DIR = PROJECT_DIR / "test-artifacts" / "screenshots"
DOCS_IMG_DIR = PROJECT_DIR / "docs" / "img"
# Wait this long for a page to show what it should (auto-waiting assertions, no sleeps).
EXPECT_TIMEOUT_MS = 15_000

TENANT = ("northwind", "Northwind Fibre")
TENANT_STAFF = ("maria", "maria-password-2718")
PLATFORM_STAFF = ("ops-oncall", "ops-oncall-password-3141")
PLANS = [
    ("Fibre 300", 300, 50, "34.00"),
    ("Fibre 1000", 1000, 200, "59.00"),
    ("Business 2G", 2000, 2000, "149.00"),
]
EXISTING_SUBSCRIBERS = [
    ("Ingrid Svensson", "ingrid@example.net", "Fibre 1000", "active"),
    ("Tomás Herrera", "tomas@example.net", "Fibre 300", "active"),
    ("Amara Okafor", "amara@example.net", "Business 2G", "active"),
    ("Lukas Becker", "lukas@example.net", "Fibre 300", "suspended"),
]
BREAKER = "provisioning"


def playwright_api():
    """Playwright's sync API, or a failure that says how to install it (never a skip)."""
    try:
        from playwright import sync_api
    except ImportError as exc:
        pytest.fail(
            f"Playwright for Python is not installed ({exc}): pip install -r requirements-dev.txt "
            "(`make test` does)",
            pytrace=False,
        )
    return sync_api


@pytest.fixture(scope="module", autouse=True)
def browser_installed() -> None:
    """Fail first, before any server of this module starts, when Chromium or Playwright is missing."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: apt-get install chromium (`make test` does)", pytrace=False
        )
    playwright_api()


@pytest.fixture
def browser_engine(site) -> Iterator[object]:
    """Playwright's driver on Debian's Chromium (Playwright never downloads a browser here).

    Started after the fixtures' database work and stopped before the database is flushed: while
    Playwright's sync API is active its event loop runs in this thread, where Django then refuses
    ORM calls.
    """
    sync_api = playwright_api()
    sync_api.expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_api.sync_playwright() as playwright:
        yield playwright


@pytest.fixture
def open_browser(browser_engine, tmp_path):
    """``open_browser(name)``: a new headless Chromium with an empty profile of its own, one page.
    At the end no page may have reported a Content-Security-Policy violation."""
    contexts = []
    violations = []

    def open_one(name: str):
        context = browser_engine.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path / f"chromium-profile-{name}"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            ignore_https_errors=True,  # the server's throwaway certificate
            viewport=VIEWPORT,
            locale="en-US",
            timezone_id="UTC",
        )
        contexts.append(context)
        context.set_default_timeout(EXPECT_TIMEOUT_MS)
        page = context.pages[0] if context.pages else context.new_page()
        page.on(
            "console",
            lambda message: "Content Security Policy" in message.text and violations.append(message.text),
        )
        return page

    yield open_one
    for context in contexts:
        context.close()
    assert violations == []


@dataclass
class Site:
    app: AppServer
    upstream: Upstream

    def url(self, path: str) -> str:
        return self.app.base_url + path

    def breaker(self) -> dict:
        """The breaker's status from the REST API (with the ops token, as automation would)."""
        answer = self.app.request(
            "GET",
            "/api/v1/circuit-breakers/status",
            headers={"Authorization": f"Bearer {self.app.secrets.ops_api_token}"},
        )
        assert answer.status == 200, answer.text
        return {item["name"]: item for item in json.loads(answer.body)["breakers"]}.get(BREAKER, {})


def production_hash(password: str) -> str:
    """A password hash the server's production settings verify (the test settings use a fast one)."""
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    hasher = PBKDF2PasswordHasher()
    return hasher.encode(password, hasher.salt())


@pytest.fixture
def people(django_user_model):
    """A tenant with plans and subscribers, one of its staff, and a platform operator."""
    from django.contrib.auth.models import Permission

    from apps.subscribers.models import ServicePlan, Subscriber
    from apps.tenants.models import Membership, Tenant

    tenant = Tenant.objects.create(slug=TENANT[0], name=TENANT[1])
    plans = {
        name: ServicePlan.objects.create(
            tenant=tenant, name=name, download_mbps=down, upload_mbps=up, monthly_price=price
        )
        for name, down, up, price in PLANS
    }
    for name, email, plan, status in EXISTING_SUBSCRIBERS:
        Subscriber.objects.create(tenant=tenant, name=name, email=email, plan=plans[plan], status=status)
    staff = django_user_model.objects.create(
        username=TENANT_STAFF[0], password=production_hash(TENANT_STAFF[1])
    )
    Membership.objects.create(user=staff, tenant=tenant)
    # Platform staff: admin access and the right to reset breakers, not a superuser.
    operator = django_user_model.objects.create(
        username=PLATFORM_STAFF[0], password=production_hash(PLATFORM_STAFF[1]), is_staff=True
    )
    operator.user_permissions.add(
        Permission.objects.get(content_type__app_label="ops", codename="reset_circuitbreaker")
    )
    return tenant


@pytest.fixture
def site(people, server_env, tmp_path, collected_static) -> Iterator[Site]:
    with ExitStack() as stack:
        # A Redis of its own: the breaker opened here must not be seen by other tests.
        redis = RedisServer().start()
        stack.callback(redis.destroy)
        upstream = Upstream().start()
        stack.callback(upstream.stop)
        app = production_server(
            {**server_env, "REDIS_URL": redis.url},
            run_dir=tmp_path / "app",
            static_root=collected_static,
            provisioning_url=upstream.url,
            tls=True,
        ).start()
        stack.callback(app.stop)
        yield Site(app, upstream)


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot as a test artefact (and into docs/img/ when asked to)."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        DOCS_IMG_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMG_DIR / path.name)
    return path


def log_in(page, site: Site, path: str, username: str, password: str) -> None:
    """Open ``path``; the site asks for a login first (ours or the admin's form), then shows it."""
    page.goto(site.url(path))
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(password)
    with page.expect_navigation():
        page.locator("form [type=submit]").click()


def submit(page, button: str) -> None:
    """Click a form's button and wait until the page the answer leads to has loaded."""
    with page.expect_navigation():
        page.get_by_role("button", name=button).click()


def plan_label(name: str) -> str:
    """How the form's drop-down shows a plan (``ServicePlan.__str__``)."""
    [(down, up)] = [(down, up) for plan, down, up, _price in PLANS if plan == name]
    return f"{name} ({down}/{up} Mbps)"


def create_subscriber(page, name: str, email: str, plan: str) -> None:
    expect = playwright_api().expect
    page.get_by_role("link", name="Subscribers").click()
    page.get_by_role("link", name="New subscriber").click()
    page.get_by_label("Name").fill(name)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Plan").select_option(label=plan_label(plan))
    submit(page, "Save")
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    expect(page.locator(".messages")).to_contain_text(f"Subscriber {name} created.")
    expect(page.locator(".heading .status")).to_have_text("Pending")
