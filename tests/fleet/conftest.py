"""Fleet fixtures: the scenario form (``FLEET_FORM=full`` in ``make fleet``), a fleet per test, the
collected static files, and the table of figures printed at the end of the run."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet import scenarios
from tests.fleet.cluster import Fleet
from tests.servers import PROJECT_DIR

FIGURES: dict[str, dict] = {}
# How long an EndpointSlice change takes to reach the ingress (FLEET-NOTES.md: typically 1-3 s).
PROPAGATION_LAG = float(os.environ.get("FLEET_PROPAGATION_LAG", "1"))


@pytest.fixture(scope="session")
def form() -> scenarios.Form:
    name = os.environ.get("FLEET_FORM", "short")
    return {"short": scenarios.SHORT, "full": scenarios.FULL}[name]


@pytest.fixture
def fleet_factory(collected_static) -> Iterator:
    """``fleet_factory(**options)``: a started :class:`Fleet`, destroyed after the test."""
    fleets: list[Fleet] = []

    def start(**options) -> Fleet:
        fleet = Fleet(propagation_lag=PROPAGATION_LAG, replicas=2, static_root=collected_static, **options)
        fleets.append(fleet)
        return fleet.start()

    yield start
    for fleet in fleets:
        fleet.destroy()


@pytest.fixture
def record():
    """``record(name, figures)``: keep a scenario's figures for the table and var/fleet-<form>.json."""

    def keep(name: str, figures: dict) -> dict:
        FIGURES[name] = figures
        return figures

    return keep


def pytest_terminal_summary(terminalreporter) -> None:
    if not FIGURES:
        return
    form = os.environ.get("FLEET_FORM", "short")
    out = PROJECT_DIR / "var" / f"fleet-{form}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(FIGURES, indent=2, default=str) + "\n")
    terminalreporter.section(f"fleet scenarios ({form} form, propagation lag {PROPAGATION_LAG:g} s)")
    for name, figures in FIGURES.items():
        terminalreporter.write_line(name)
        for key, value in figures.items():
            if isinstance(value, dict):
                value = ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
            terminalreporter.write_line(f"  {key:<45} {_fmt(value)}")
    terminalreporter.write_line(f"(written to {Path(out).relative_to(PROJECT_DIR)})")


def _fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)
