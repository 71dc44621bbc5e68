"""The suite runs against the real servers the harness started, not SQLite or local memory."""

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection


@pytest.mark.django_db
def test_database_is_the_harness_postgresql(postgres_server):
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT inet_server_port(), current_database(), version()")
        port, database, version = cursor.fetchone()
    assert port == postgres_server.port
    assert database == "test_dotmac"
    assert version.startswith("PostgreSQL")


def test_cache_is_the_harness_redis(redis_server):
    import redis

    cache.set("harness-probe", "here", 30)
    client = redis.Redis(host="127.0.0.1", port=redis_server.port)
    keys = [key.decode() for key in client.keys("*harness-probe*")]
    assert keys, "the cache did not write to the harness redis-server"
    assert settings.CACHES["default"]["BACKEND"] == "apps.ops.cache.RedisCache"
    info = client.info("server")
    assert int(info["tcp_port"]) == redis_server.port
