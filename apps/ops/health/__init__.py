"""Health checks: the check interface, the built-in checks, the concurrent runner and the probes'
answers, for the probe middleware, ``manage.py health`` and the server hooks (docs/ARCHITECTURE.md,
"Probes").

Writing a check: :class:`HealthCheck`, :class:`CheckWarning`, :class:`CheckFailed`,
:class:`Observation`, :class:`Status` (``apps.ops.health.base``).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from django.db import connections
from django.db.migrations.loader import MigrationLoader

from . import runner
from .base import CheckFailed, CheckWarning, HealthCheck, HealthCheckError, Observation, Status
from .checks import MigrationsCheck
from .config import configured_checks, readiness_checks
from .report import service_document

__all__ = [
    "CheckFailed",
    "CheckWarning",
    "HealthCheck",
    "Observation",
    "Status",
    "answer",
    "prepare",
    "reset",
]


def answer(*, ready: bool, details: bool) -> tuple[int, dict[str, Any]]:
    """The HTTP status and document of ``/ready`` (``HEALTH_READY_CHECKS``) or else ``/health`` (every
    check in ``HEALTH_CHECKS``), run under the overall deadline with the per-process cache."""
    if ready:
        report = runner.run_checks(readiness_checks())
        return report.http_status, report.as_health_json(details=details)
    report = runner.run_checks(configured_checks())
    return report.http_status, service_document(report, details=details)


def prepare() -> None:
    """For a server process at boot: import the migration files now (no query), so that its first
    probe costs a graph and one query (about 10 ms) rather than the imports too (about 70 ms), and
    find the migrations applied in a thread of its own, while the process serves."""
    MigrationLoader(None, ignore_no_migrations=True)
    threading.Thread(target=_find_migrations_applied, name="health-migrations-at-boot", daemon=True).start()


def _find_migrations_applied() -> None:
    try:
        for check in readiness_checks():
            if isinstance(check, MigrationsCheck):
                with contextlib.suppress(HealthCheckError):  # reported by the probes, which run it again
                    check.run()
    finally:
        connections.close_all()  # this thread's connection goes back to the pool


def reset() -> None:
    """Forget cached results and the remembered "migrations applied" (tests)."""
    runner.reset()
    MigrationsCheck.applied_aliases.clear()
