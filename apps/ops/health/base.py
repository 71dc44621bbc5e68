"""The check interface: a base class with one method to implement, a result value, two exceptions.

``run()`` returns to pass (optionally with an :class:`Observation`) or raises :class:`CheckWarning` or
:class:`CheckFailed` with a message for operators; the runner reports any other exception as a
generic failure, so internals never reach a response body (docs/ARCHITECTURE.md, "Probes").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


class Status(enum.StrEnum):
    """IETF health+json statuses, from best to worst."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"

    @property
    def gauge_value(self) -> float:
        """The value of ``health_check_status``: 1 pass, 0.5 warn, 0 fail."""
        return {Status.PASS: 1.0, Status.WARN: 0.5, Status.FAIL: 0.0}[self]


@dataclass(frozen=True)
class Observation:
    """What a check measured (IETF ``observedValue`` / ``observedUnit``)."""

    value: Any
    unit: str = ""


def describe_error(exc: BaseException) -> str:
    """The exception's class and first message line, short: for operators, never for anonymous callers."""
    first_line = (str(exc).strip().splitlines() or [""])[0]
    return (f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__)[:200]


class HealthCheckError(Exception):
    """Raised by a check to report a status other than *pass*. The message is shown to authorized
    callers only: it may name the dependency and the cause, never a secret."""

    status = Status.FAIL

    def __init__(self, message: str, *, observation: Observation | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.observation = observation


class CheckWarning(HealthCheckError):
    """The component works but needs attention (disk filling up, a breaker open)."""

    status = Status.WARN


class CheckFailed(HealthCheckError):
    """The component does not work."""


class HealthCheck:
    """One check of one component. Subclasses set ``name`` and implement ``run()``.

    A subclass overrides a trait on the class, or in ``__init__`` when it depends on the options;
    configuration sets ``critical`` and ``timeout``. ``build()`` may return one instance per
    component (a database alias, a directory), reported together under ``name``.
    """

    name: str = ""  # the key in the report: its name in settings.HEALTH_CHECKS
    component_type: str = "component"  # IETF componentType: "datastore", "system", "component"
    critical: bool = True  # does its failure fail the whole report (503)?
    timeout: float | None = None  # seconds; never beyond the overall deadline
    # A dependency every pod shares (the database, Redis): its outage fails every pod alike, and
    # taking them all out of service would turn a degraded site into no site, so any failure of
    # such a check (an error, no answer in time) is reported as ``warn``.
    shared_dependency: bool = False
    # False for checks that only read this process's memory: never cached, so they reflect a change
    # (the process starting to drain) at once.
    cached: bool = True
    # Whether it may wait on the network or a device: then it runs in a check thread under the
    # deadline, otherwise in the caller's thread, which spares a thread handoff.
    blocking: bool = True

    def __init__(self, *, component_id: str | None = None) -> None:
        self.component_id = component_id

    @classmethod
    def build(cls, **options: Any) -> list[HealthCheck]:
        """The instances this check runs as; one by default."""
        return [cls(**options)]

    @property
    def key(self) -> str:
        """Unique per process: the metric label and the cache key (``database:default``)."""
        return f"{self.name}:{self.component_id}" if self.component_id else self.name

    def timeout_within(self, deadline: float) -> float:
        """Seconds this check may take: its own timeout, never beyond the overall deadline."""
        return min(self.timeout, deadline) if self.timeout else deadline

    def result(
        self, status: Status, duration: float, output: str = "", observation: Observation | None = None
    ) -> CheckResult:
        """A result of this check; without an observation, the observed value is the response time."""
        if status is Status.FAIL and self.shared_dependency:
            status = Status.WARN
        return CheckResult(
            name=self.name,
            key=self.key,
            component_id=self.component_id,
            component_type=self.component_type,
            status=status,
            critical=self.critical,
            duration=duration,
            time=datetime.now(UTC),
            output=output,
            observation=observation or Observation(round(duration * 1000, 3), "ms"),
        )

    def run(self) -> Observation | None:
        """Check the component. Return to pass; raise ``CheckWarning``/``CheckFailed`` otherwise."""
        raise NotImplementedError


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one run of one check (cached and shared between concurrent callers)."""

    name: str
    key: str  # the check's key
    component_id: str | None
    component_type: str
    status: Status
    critical: bool
    duration: float
    time: datetime
    output: str
    observation: Observation

    @property
    def fails_report(self) -> bool:
        """A critical failure makes the whole report fail (503)."""
        return self.critical and self.status is Status.FAIL
