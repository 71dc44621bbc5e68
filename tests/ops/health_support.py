"""Shared by the health check and probe tests: every test starts and ends with no cached result.

Import ``fresh_health_state`` into a test module to apply it to every test there.
"""

from __future__ import annotations

import pytest

from apps.ops import health, shutdown


@pytest.fixture(autouse=True)
def fresh_health_state():
    """No cached check result, no remembered migration state, not draining."""
    health.reset()
    yield
    health.reset()
    shutdown.reset()
