"""Test settings: the same settings, pointed at the real servers the test harness starts.

Ports are picked here, once; ``tests/conftest.py`` starts PostgreSQL and Redis on exactly these
ports before any test touches them (``TEST_SERVERS``).
"""

import socket

from . import *  # noqa: F403
from .env import cache_from_url, database_from_url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


TEST_SERVERS = {
    "postgres_port": _free_port(),
    "postgres_user": "dotmac",
    "postgres_password": "dotmac-test",
    "redis_port": _free_port(),
}
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
