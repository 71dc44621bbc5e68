"""Shared by the circuit breaker tests: a clean registry per test, breakers on the database, config
helpers, a second process.

The registry reads its settings once per process; a test that changes one of them (with the
``settings`` fixture or ``override_settings``, here or in any other test module, once this module
is imported) gets breakers that read them afresh, and so does the test after it.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from django.core.signals import setting_changed
from django.db import connection
from django.dispatch import receiver

from apps.ops import breakers
from apps.ops.breakers.config import overrides
from apps.ops.breakers.registry import registry
from apps.ops.models import BreakerState

PROJECT_DIR = Path(__file__).resolve().parent.parent.parent
RESULT_MARK = "RESULT "
BREAKER_SETTINGS = frozenset(
    {"REDIS_URL", "REDIS_SOCKET_TIMEOUT", "CIRCUIT_BREAKERS", "CIRCUIT_BREAKER_CONFIG_REFRESH_SECONDS"}
)


def clear_local_breakers() -> None:
    """Forget this process's breakers, the settings they read and the admin overrides cached
    (Redis and the database keep theirs)."""
    registry.disconnect()
    registry.reset()
    overrides.reset()


@receiver(setting_changed)
def _start_breakers_afresh(*, setting: str, **_kwargs: object) -> None:
    if setting in BREAKER_SETTINGS:
        clear_local_breakers()


@pytest.fixture
def fresh_breakers(settings):
    """No breaker objects left over from another test (Redis itself is flushed per test)."""
    clear_local_breakers()
    yield settings
    clear_local_breakers()


@pytest.fixture
def database_breakers(fresh_breakers):
    """No REDIS_URL: breakers share their state through the database. Their rows are committed by
    the breakers' own connection, outside the test's transaction, so they are deleted afterwards."""
    fresh_breakers.REDIS_URL = ""
    yield fresh_breakers
    clear_local_breakers()
    deleting = threading.Thread(target=lambda: (BreakerState.objects.all().delete(), connection.close()))
    deleting.start()
    deleting.join(10)


def configure(settings, name: str, **values) -> None:
    """Put ``name`` in ``settings.CIRCUIT_BREAKERS`` with ``values`` (applied at once)."""
    settings.CIRCUIT_BREAKERS = {**settings.CIRCUIT_BREAKERS, name: values}


def trip(name: str) -> None:
    """Open breaker ``name`` with ``fail_max`` failing calls."""
    breaker = breakers.get_breaker(name)
    for _ in range(breaker.fail_max):
        with contextlib.suppress(ZeroDivisionError):
            breaker.call(lambda: 1 / 0)
    assert breaker.status().state == "open"


def run_in_other_process(env: dict[str, str], code: str, *, timeout: float = 60) -> dict:
    """Run ``code`` in a fresh Django process (``dotmac.settings``); it sets ``result`` (JSON-able)."""
    script = (
        "import django, json\ndjango.setup()\n"
        + textwrap.dedent(code)
        + (f"\nprint({RESULT_MARK!r} + json.dumps(result, default=str), flush=True)\n")
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert completed.returncode == 0, f"other process failed:\n{completed.stdout}\n{completed.stderr}"
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_MARK)]
    assert lines, f"no result from the other process:\n{completed.stdout}\n{completed.stderr}"
    return json.loads(lines[-1][len(RESULT_MARK) :])
