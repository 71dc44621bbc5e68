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
from tests.fleet.controller import PROPAGATION_LAGS
from tests.servers import PROJECT_DIR

FIGURES: dict[str, dict] = {}
# How long an EndpointSlice change takes to reach the ingress (FLEET-NOTES.md: typically 1-3 s).
PROPAGATION_LAG = float(os.environ.get("FLEET_PROPAGATION_LAG", "1"))
# The routine operations run at both ends of that range in the full form; the short form (CI) runs
# them at the slower end only, where the drain delay has the least to spare.
SHORT_FORM_LAGS = (max(PROPAGATION_LAGS),)


def pytest_generate_tests(metafunc) -> None:
    """``propagation_lag``: every lag of the form (or the one ``FLEET_PROPAGATION_LAG`` names)."""
    if "propagation_lag" not in metafunc.fixturenames:
        return
    if "FLEET_PROPAGATION_LAG" in os.environ:
        lags = (PROPAGATION_LAG,)
    else:
        lags = PROPAGATION_LAGS if os.environ.get("FLEET_FORM") == "full" else SHORT_FORM_LAGS
    metafunc.parametrize("propagation_lag", lags, ids=[f"lag{lag:g}s" for lag in lags])


@pytest.fixture(scope="session")
def form() -> scenarios.Form:
    name = os.environ.get("FLEET_FORM", "short")
    return {"short": scenarios.SHORT, "full": scenarios.FULL}[name]


@pytest.fixture
def fleet_factory(collected_static) -> Iterator:
    """``fleet_factory(**options)``: a started :class:`Fleet`, destroyed after the test."""
    fleets: list[Fleet] = []

    def start(**options) -> Fleet:
        options = {"propagation_lag": PROPAGATION_LAG, "replicas": 2, **options}
        fleet = Fleet(static_root=collected_static, **options)
        fleets.append(fleet)
        return fleet.start()

    yield start
    for fleet in fleets:
        fleet.destroy()


@pytest.fixture
def record():
    """``record(name, figures)``: keep a scenario's figures for the table and var/fleet-<form>.json."""

    def keep(name: str, figures: dict) -> dict:
        FIGURES[name] = {key: value for key, value in figures.items() if not key.startswith("_")}
        return figures

    return keep


def pytest_terminal_summary(terminalreporter) -> None:
    if not FIGURES:
        return
    form = os.environ.get("FLEET_FORM", "short")
    out = PROJECT_DIR / "var" / f"fleet-{form}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(FIGURES, indent=2, default=str) + "\n")
    terminalreporter.section(
        f"fleet scenarios ({form} form; degradation at propagation lag {PROPAGATION_LAG:g} s)"
    )
    operations = {name: figures for name, figures in FIGURES.items() if "operation_seconds" in figures}
    if operations:
        terminalreporter.write_line(OPERATIONS_HEADER)
        for name, figures in operations.items():
            terminalreporter.write_line(_operation_row(name, figures))
    for name, figures in FIGURES.items():
        terminalreporter.write_line(name)
        for key, value in figures.items():
            if isinstance(value, dict):
                value = ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
            terminalreporter.write_line(f"  {key:<45} {_fmt(value)}")
    terminalreporter.write_line(f"(written to {Path(out).relative_to(PROJECT_DIR)})")


OPERATIONS_HEADER = (
    f"{'routine operation':<34} {'lag':>4} {'took':>6} {'requests':>8} {'failed':>6} {'POSTs ack':>9} "
    f"{'lost':>4} {'twice':>5} {'slowest stop':>12}"
)


def _operation_row(name: str, figures: dict) -> str:
    return (
        f"{name.split(', lag')[0]:<34} {figures['propagation_lag']:>3g}s "
        f"{figures['operation_seconds']:>5.1f}s "
        f"{figures['requests']:>8} {figures['failed']:>6} {figures['acknowledged_posts']:>9} "
        f"{figures['acknowledged_lost']:>4} {figures['applied_twice']:>5} "
        + (f"{figures['slowest_stop_seconds']:>11.1f}s" if figures["pods_deleted"] else f"{'-':>12}")
    )


def _fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)
