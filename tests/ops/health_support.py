"""Shared by the health check and probe tests.

Import ``fresh_health_state`` into a test module to apply it to every test there.
"""

from __future__ import annotations

import pytest
import redis

from apps.ops import health
from apps.ops.shutdown import state as shutdown


@pytest.fixture(autouse=True)
def fresh_health_state():
    """No cached check result, no remembered migration state, not draining."""
    health.reset()
    yield
    health.reset()
    shutdown.reset()


class RedisCommandCounter:
    """Reads a Redis server's per-command call counts over one connection (so connecting is not counted)."""

    def __init__(self, port: int) -> None:
        self.client = redis.Redis(port=port)
        self.client.ping()

    def calls(self) -> dict[str, int]:
        stats = self.client.info("commandstats")
        return {name.removeprefix("cmdstat_"): int(entry["calls"]) for name, entry in stats.items()}

    def pings(self) -> int:
        return self.calls().get("ping", 0)
