"""The cache backend: counted, and bypassed at once while its Redis is unreachable (apps.ops.cache)."""

from __future__ import annotations

import time

import pytest
import redis
from django.core.cache import caches
from prometheus_client import REGISTRY

from apps.ops.cache import outage_of
from tests.servers import wait_until

pytestmark = pytest.mark.servers


def bypassed(operation: str) -> float:
    labels = {"operation": operation, "result": "bypassed"}
    return REGISTRY.get_sample_value("cache_operations_total", labels) or 0.0


def cache_works(cache) -> bool:
    cache.set("probe", "value", 30)
    return cache.get("probe") == "value"


@pytest.mark.parametrize("outage", ["stopped", "frozen"])
def test_cache_calls_answer_at_once_while_redis_is_unreachable_and_use_it_again_when_it_is_back(
    own_redis, outage, monkeypatch
):
    cache = caches["default"]
    cache.set("kept", "before", 60)
    assert cache.get("kept") == "before"
    # Every command the cache's own client sends (the outage's pings go through a client of their own).
    client = cache.client.get_client(write=True)
    commands: list[tuple] = []

    def counted(*args, **kwargs):
        commands.append(args)
        return type(client).execute_command(client, *args, **kwargs)

    monkeypatch.setattr(client, "execute_command", counted)
    (own_redis.stop if outage == "stopped" else own_redis.freeze)()
    try:
        began = time.monotonic()
        assert cache.get("kept", "default") == "default"  # the call that finds Redis unreachable
        # One 0.5 s socket timeout, no retries: four attempts would take 2 s or more.
        assert time.monotonic() - began < 2.0
        assert outage_of(cache).unreachable
        gets_before, sets_before, sent_before = bypassed("get"), bypassed("set"), len(commands)
        for n in range(50):
            assert cache.get("kept") is None
            assert cache.get_or_set(f"computed-{n}", n, 60) == n  # computed, nothing stored
            cache.set("other", 1, 60)
            cache.delete("other")
        assert len(commands) == sent_before  # 200 calls, not one of them waited on Redis
        assert bypassed("get") - gets_before >= 100
        assert bypassed("set") - sets_before == 50
    finally:
        (own_redis.restart if outage == "stopped" else own_redis.thaw)()
    wait_until(lambda: cache_works(cache), timeout=5, message="the cache to use Redis again")
    assert not outage_of(cache).unreachable
    if outage == "frozen":
        assert cache.get("kept") == "before"  # the same server: what it held is served again


def test_a_command_redis_refuses_is_raised_not_taken_for_an_outage(own_redis):
    cache = caches["default"]
    admin = redis.Redis(port=own_redis.port)
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", 1)  # every write is refused: "command not allowed when used memory >…"
    with pytest.raises(redis.ResponseError, match="maxmemory"):
        cache.set("refused", "value", 60)
    assert not outage_of(cache).unreachable
    admin.close()
