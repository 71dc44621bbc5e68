"""Fixtures shared by the ops tests."""

from __future__ import annotations

import pytest

from dotmac.settings.env import cache_from_url
from tests.servers import RedisServer


@pytest.fixture
def own_redis(settings):
    """A Redis of the test's own, used for breaker state and the cache, so the test may stop it."""
    server = RedisServer().start()
    settings.REDIS_URL = server.url
    settings.CACHES = cache_from_url(server.url, socket_timeout=0.5)
    settings.CACHE_RETRY_SECONDS = 0.2
    yield server
    server.destroy()
