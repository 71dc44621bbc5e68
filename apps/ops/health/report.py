"""A set of check results, its overall status, and its IETF ``application/health+json`` form
(draft-inadarei-api-health-check; fields in docs/ARCHITECTURE.md, "Probes"). Without details every
check shows its status only, and ``/health`` no service information."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from .base import CheckResult, Status

_IMPORTED_AT = time.monotonic()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class HealthReport:
    results: list[CheckResult]

    @property
    def status(self) -> Status:
        """fail when a critical check fails; warn when any check is not pass; else pass."""
        if any(result.fails_report for result in self.results):
            return Status.FAIL
        if any(result.status is not Status.PASS for result in self.results):
            return Status.WARN
        return Status.PASS

    @property
    def http_status(self) -> int:
        return 503 if self.status is Status.FAIL else 200

    def as_health_json(self, *, details: bool) -> dict[str, Any]:
        checks: dict[str, list[dict[str, Any]]] = {}
        for result in self.results:
            checks.setdefault(result.name, []).append(_check_entry(result, details=details))
        document: dict[str, Any] = {"status": self.status.value}
        if details and self.status is not Status.PASS:
            not_passing = {
                "failing critical checks": [r.key for r in self.results if r.fails_report],
                "not passing (not critical)": [
                    r.key for r in self.results if r.status is not Status.PASS and not r.fails_report
                ],
            }
            document["output"] = "; ".join(f"{k}: {', '.join(v)}" for k, v in not_passing.items() if v)
        document["checks"] = checks
        return document


def _check_entry(result: CheckResult, *, details: bool) -> dict[str, Any]:
    if not details:
        return {"status": result.status.value}
    entry = {
        "status": result.status.value,
        "componentId": result.component_id,
        "componentType": result.component_type,
        "observedValue": result.observation.value,
        "observedUnit": result.observation.unit,
        "time": _iso(result.time),
        "critical": result.critical,
        "output": result.output,
    }
    return {key: value for key, value in entry.items() if value is not None and value != ""}


def _process_uptime() -> float:
    """Seconds since this process started (from /proc on Linux, else since this module loaded)."""
    try:
        with open("/proc/self/stat") as stat_file:
            # Field 22 (starttime, in clock ticks since boot) comes after the parenthesised name.
            fields = stat_file.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as uptime_file:
            system_uptime = float(uptime_file.read().split()[0])
        return max(0.0, system_uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED_AT


def service_document(report: HealthReport, *, details: bool) -> dict[str, Any]:
    """``/health``: every check and, with details, who is answering (service, version, environment,
    uptime)."""
    document = report.as_health_json(details=details)
    if not details:
        return document
    checks = document.pop("checks")
    document.update(
        serviceId=settings.SERVICE_NAME,
        description=f"{settings.SERVICE_NAME} ({settings.DJANGO_ENV})",
        version=settings.APP_VERSION,
        releaseId=settings.APP_VERSION,
        environment=settings.DJANGO_ENV,
    )
    # The draft's own example reports uptime as a system check.
    uptime = {
        "componentType": "system",
        "observedValue": round(_process_uptime(), 3),
        "observedUnit": "s",
        "status": Status.PASS.value,
        "time": _iso(datetime.now(UTC)),
    }
    document["checks"] = {"uptime": [uptime], **checks}
    return document
