"""Health checks: the check interface, the built-in checks and the concurrent runner.

Public API (no request objects anywhere, so views, commands and server hooks can all use it):

- :class:`HealthCheck`, :class:`CheckWarning`, :class:`CheckFailed`, :class:`Observation`,
  :class:`CheckResult`, :class:`Status` — writing a check (``apps.ops.health.base``).
- :func:`readiness_report` / :func:`full_report` — run the configured checks (``/ready`` and
  ``/health``) under the overall deadline, using the per-process cache.
- :func:`prepare` — for a server process at boot: load what the first run of the checks needs.
- :func:`reset` — forget cached results and the remembered migration state (tests).
"""

from __future__ import annotations

import threading

from django.db import connections

from . import runner
from .base import CheckFailed, CheckResult, CheckWarning, HealthCheck, HealthCheckError, Observation, Status
from .checks import MigrationsCheck
from .config import configured_checks, readiness_checks
from .report import HealthReport

__all__ = [
    "CheckFailed",
    "CheckResult",
    "CheckWarning",
    "HealthCheck",
    "HealthCheckError",
    "HealthReport",
    "Observation",
    "Status",
    "full_report",
    "prepare",
    "readiness_report",
    "reset",
]


def readiness_report() -> HealthReport:
    """Run ``settings.HEALTH_READY_CHECKS`` (what ``/ready`` answers with)."""
    return runner.run_checks(readiness_checks())


def full_report() -> HealthReport:
    """Run every check in ``settings.HEALTH_CHECKS`` (what ``/health`` answers with)."""
    return runner.run_checks(configured_checks())


def prepare() -> None:
    """Import the migration files now, so that a new worker's first probe costs what every later one
    does, and find the migrations applied in a thread of its own (the worker serves meanwhile).

    A process that found them applied never asks again, so a later database outage cannot fail its
    readiness through this check, whichever worker the probes reach; if the database cannot tell
    at boot, the probes ask until it can.
    """
    MigrationsCheck.load_migration_files()
    threading.Thread(target=_find_migrations_applied, name="health-migrations-at-boot", daemon=True).start()


def _find_migrations_applied() -> None:
    try:
        for check in readiness_checks():
            if isinstance(check, MigrationsCheck):
                try:
                    check.run()
                except HealthCheckError:
                    pass  # reported by the probes, which run it again
    finally:
        connections.close_all()  # this thread's connection goes back to the pool


def reset() -> None:
    """Forget cached results and the remembered "migrations applied"."""
    runner.reset()
    MigrationsCheck.forget_applied()
