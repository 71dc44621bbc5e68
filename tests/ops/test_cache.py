"""The cache backend: counted, and bypassed at once while its Redis is unreachable (apps.ops.cache)."""

from __future__ import annotations

import time

import pytest
from django.core.cache import caches

from apps.ops.cache import outage_of
from apps.ops.metrics.definitions import CACHE_OPERATIONS
from dotmac.settings.env import cache_from_url
from tests.servers import RedisServer, wait_until

pytestmark = pytest.mark.servers


@pytest.fixture
def own_redis(settings):
    server = RedisServer().start()
    settings.CACHES = cache_from_url(server.url, socket_timeout=0.5)
    settings.CACHE_RETRY_SECONDS = 0.2
    yield server
    server.destroy()


def bypassed(operation: str) -> float:
    return CACHE_OPERATIONS.labels(operation, "bypassed")._value.get()


def cache_works(cache) -> bool:
    cache.set("probe", "value", 30)
    return cache.get("probe") == "value"


@pytest.mark.parametrize("outage", ["stopped", "frozen"])
def test_cache_calls_answer_at_once_while_redis_is_unreachable_and_use_it_again_when_it_is_back(
    own_redis, outage
):
    cache = caches["default"]
    cache.set("kept", "before", 60)
    assert cache.get("kept") == "before"
    (own_redis.stop if outage == "stopped" else own_redis.freeze)()
    try:
        began = time.monotonic()
        assert cache.get("kept", "default") == "default"  # the call that finds Redis unreachable
        assert time.monotonic() - began < 1.0  # one socket timeout (0.5 s) at most, no retries
        assert outage_of(cache).unreachable
        gets_before, sets_before = bypassed("get"), bypassed("set")
        began = time.monotonic()
        for n in range(50):
            assert cache.get("kept") is None
            assert cache.get_or_set(f"computed-{n}", n, 60) == n  # computed, nothing stored
            cache.set("other", 1, 60)
            cache.delete("other")
        assert time.monotonic() - began < 0.5  # 200 calls without waiting on Redis once
        assert bypassed("get") - gets_before >= 100
        assert bypassed("set") - sets_before == 50
    finally:
        (own_redis.restart if outage == "stopped" else own_redis.thaw)()
    wait_until(lambda: cache_works(cache), timeout=5, message="the cache to use Redis again")
    assert not outage_of(cache).unreachable
    if outage == "frozen":
        assert cache.get("kept") == "before"  # the same server: what it held is served again


def test_a_command_redis_refuses_is_raised_not_taken_for_an_outage(own_redis):
    import redis

    cache = caches["default"]
    admin = redis.Redis(port=own_redis.port)
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", 1)  # every write is refused: "command not allowed when used memory >…"
    with pytest.raises(redis.ResponseError, match="maxmemory"):
        cache.set("refused", "value", 60)
    assert not outage_of(cache).unreachable
    admin.close()
