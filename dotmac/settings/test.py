"""Test settings: the same settings, pointed at the real servers the test harness starts.

The test session picks the servers' ports before the settings are read (``tests/session.py``) and
``tests/conftest.py`` starts PostgreSQL and Redis on them before any test touches them.
"""

from django.core.exceptions import ImproperlyConfigured

from . import *  # noqa: F403
from .env import cache_from_url, database_from_url, env_int

TEST_SERVERS = {
    "postgres_port": env_int("DOTMAC_TEST_POSTGRES_PORT", 0),
    "postgres_user": "dotmac",
    "postgres_password": "dotmac-test",
    "redis_port": env_int("DOTMAC_TEST_REDIS_PORT", 0),
}
if not (TEST_SERVERS["postgres_port"] and TEST_SERVERS["redis_port"]):
    raise ImproperlyConfigured("dotmac.settings.test is for the test suite: run it with python -m pytest")
DATABASE_URL = (
    f"postgres://{TEST_SERVERS['postgres_user']}:{TEST_SERVERS['postgres_password']}"
    f"@127.0.0.1:{TEST_SERVERS['postgres_port']}/dotmac"
)
DATABASES = {
    "default": database_from_url(
        DATABASE_URL,
        pool=DATABASE_POOL,  # noqa: F405
        pool_max_size=DATABASE_POOL_MAX_SIZE,  # noqa: F405
        connect_timeout=DATABASE_CONNECT_TIMEOUT,  # noqa: F405
    )
}
REDIS_URL = f"redis://127.0.0.1:{TEST_SERVERS['redis_port']}/0"
CACHES = cache_from_url(REDIS_URL, socket_timeout=CACHE_SOCKET_TIMEOUT)  # noqa: F405

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
