"""Shared fixtures: real PostgreSQL and Redis servers for the whole session, and test data.

The servers are started on the ports ``tests/session.py`` chose (``settings.TEST_SERVERS``) before any
test runs and are stopped when the session ends. If one cannot start, the session fails with the
server's own message.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from tests.e2e.app_server import collect_static
from tests.servers import PostgresServer, RedisServer, subprocess_env

PROJECT_DIR = Path(__file__).resolve().parent.parent
# Breakers start afresh when a test changes their settings, in every test (and `fresh_breakers`).
pytest_plugins = ["tests.ops.breaker_support"]


@pytest.fixture(scope="session")
def postgres_server():
    servers = settings.TEST_SERVERS
    server = PostgresServer(
        port=servers["postgres_port"], user=servers["postgres_user"], password=servers["postgres_password"]
    )
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer(port=settings.TEST_SERVERS["redis_port"]).start()
    yield server
    server.destroy()


@pytest.fixture(scope="session", autouse=True)
def real_servers(postgres_server, redis_server):
    """Every test runs with both servers up; pytest-django creates ``test_dotmac`` on this PostgreSQL."""
    return postgres_server, redis_server


@pytest.fixture(scope="session")
def django_db_modify_db_settings(real_servers):
    """Hooked in before pytest-django creates the test database, so the server is up by then."""


@pytest.fixture(autouse=True)
def _clear_cache_and_tenant_resolution(real_servers):
    from django.core.cache import cache

    from apps.ops import cache as cache_backends
    from apps.tenants.resolution import reset_cache

    cache.clear()
    reset_cache()
    yield
    cache_backends.reset()  # outages a test provoked, and their watcher threads


@pytest.fixture(scope="session")
def collected_static(tmp_path_factory) -> Path:
    """Static files collected once per session, as the image collects them at build time."""
    root = tmp_path_factory.getbasetemp() / "collected-static"
    return collect_static(subprocess_env(DATA_DIR=str(root.parent / "collectstatic-data")), root)


@pytest.fixture
def server_env(postgres_server, redis_server) -> dict[str, str]:
    """Environment for a subprocess (gunicorn, manage.py) using the test database and Redis."""
    db_name = settings.DATABASES["default"]["NAME"]
    return subprocess_env(DATABASE_URL=postgres_server.url(db_name), REDIS_URL=redis_server.url)


@pytest.fixture
def tenant_factory(db):
    from apps.tenants.models import Tenant

    def make(slug: str, name: str | None = None, active: bool = True) -> Tenant:
        return Tenant.objects.create(slug=slug, name=name or slug.title(), active=active)

    return make


@pytest.fixture
def staff_factory(db, django_user_model):
    from apps.tenants.models import Membership

    def make(tenant, username: str, password: str = "pw-123456") -> object:
        user = django_user_model.objects.create_user(username=username, password=password)
        Membership.objects.create(user=user, tenant=tenant)
        return user

    return make


@pytest.fixture
def member_cookie(staff_factory):
    """``member_cookie(tenant)``: the Cookie header of a new staff member of ``tenant``, logged in
    through a real session row (for requests to servers the test starts)."""
    from tests.sessions import session_cookie

    def make(tenant) -> str:
        return session_cookie(staff_factory(tenant, f"{tenant.slug}-member"))

    return make


@pytest.fixture
def plan_factory(db):
    from apps.subscribers.models import ServicePlan

    def make(tenant, name: str = "Home 100", down: int = 100, up: int = 20, price: str = "29.00"):
        return ServicePlan.objects.create(
            tenant=tenant, name=name, download_mbps=down, upload_mbps=up, monthly_price=price
        )

    return make
