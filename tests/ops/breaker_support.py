"""Shared by the circuit breaker tests: a clean registry per test, config helpers, a second process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from apps.ops import breakers

PROJECT_DIR = Path(__file__).resolve().parent.parent.parent
RESULT_MARK = "RESULT "


@pytest.fixture
def fresh_breakers(settings):
    """No breaker objects left over from another test (Redis itself is flushed per test)."""
    breakers.clear_local_breakers()
    yield settings
    breakers.clear_local_breakers()


def configure(settings, name: str, **values) -> None:
    """Put ``name`` in ``settings.CIRCUIT_BREAKERS`` with ``values`` (applied at once)."""
    settings.CIRCUIT_BREAKERS = {**settings.CIRCUIT_BREAKERS, name: values}


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
