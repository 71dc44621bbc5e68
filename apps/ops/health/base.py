"""The check interface: a base class with one method to implement, a result value, two exceptions.

A check subclasses :class:`HealthCheck` and implements ``run()``. Returning normally means *pass*
(optionally with an :class:`Observation`); raising :class:`CheckWarning` or :class:`CheckFailed`
means *warn* or *fail* with a message meant for operators. Any other exception is logged by the
runner and reported as a generic failure, so internals never reach a response body.

Nothing here knows about requests: views, management commands and server hooks all use it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar


class Status(enum.StrEnum):
    """IETF health+json statuses, ordered from best to worst."""

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


def component_key(name: str, component_id: str | None) -> str:
    """``name`` or ``name:component`` (``database:default``): metric label and cache key."""
    return f"{name}:{component_id}" if component_id else name


class HealthCheckError(Exception):
    """Base of the exceptions a check raises to report a status other than *pass*.

    The message is shown to authorized callers only, so it may name the dependency and the cause;
    it must not contain secrets (passwords, tokens, full connection strings).
    """

    status: ClassVar[Status] = Status.FAIL

    def __init__(self, message: str, *, observation: Observation | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.observation = observation


class CheckWarning(HealthCheckError):
    """The component works but needs attention (disk filling up, a breaker open)."""

    status = Status.WARN


class CheckFailed(HealthCheckError):
    """The component does not work."""

    status = Status.FAIL


class HealthCheck:
    """One check of one component. Subclasses set ``name`` and implement ``run()``.

    Options come from ``settings.HEALTH_CHECKS[name]``: ``critical`` (does a failure fail the
    whole report?), ``timeout`` (seconds; the overall deadline still applies) and any keyword the
    subclass's ``__init__`` accepts. ``build()`` may return several instances of one check, one per
    component (a database alias, a directory); they are reported together under ``name``.
    """

    #: The key in the report; configuration sets it to the name under ``settings.HEALTH_CHECKS``.
    name: str = ""
    #: IETF ``componentType``: "datastore", "system", "component".
    component_type: ClassVar[str] = "component"
    #: Default criticality; ``settings.HEALTH_CHECKS[name]["critical"]`` overrides it.
    critical_by_default: ClassVar[bool] = True
    #: True for a dependency every pod shares (the database, Redis). Its outage fails every pod
    #: alike, and taking them all out of service would turn a degraded site into no site: any
    #: failure of such a check (an error, no answer in time) is reported as ``warn``, never ``fail``.
    shared_dependency: ClassVar[bool] = False
    #: False for checks that only read this process's memory: never cached, so they reflect a
    #: change (the process starting to drain) at once.
    cached: ClassVar[bool] = True
    #: True for checks that may wait on the network or a device: they run in a check thread under
    #: the deadline. Checks that cannot block (reading memory or /proc) run in the caller's thread,
    #: which spares a thread handoff per run.
    blocking: ClassVar[bool] = True

    def __init__(self, *, component_id: str | None = None) -> None:
        self.component_id = component_id
        self.critical = self.critical_by_default
        self.timeout: float | None = None

    @classmethod
    def build(cls, **options: Any) -> list[HealthCheck]:
        """The instances this check runs as; one by default."""
        return [cls(**options)]

    @property
    def key(self) -> str:
        """Unique per process: the metric label and the cache key (``database:default``)."""
        return component_key(self.name, self.component_id)

    def timeout_within(self, deadline: float) -> float:
        """Seconds this check may take: its own timeout, never beyond the overall deadline."""
        return min(self.timeout, deadline) if self.timeout else deadline

    def result(
        self, status: Status, duration: float, output: str = "", observation: Observation | None = None
    ) -> CheckResult:
        """A result of this check; without an observation, the observed value is the response time.

        A failure of a shared dependency is reported as ``warn`` (see ``shared_dependency``).
        """
        if status is Status.FAIL and self.shared_dependency:
            status = Status.WARN
        return CheckResult(
            name=self.name,
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

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key} critical={self.critical}>"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one run of one check (cached and shared between concurrent callers)."""

    name: str
    component_id: str | None
    component_type: str
    status: Status
    critical: bool
    duration: float
    time: datetime
    output: str = ""
    observation: Observation | None = field(default=None)

    @property
    def key(self) -> str:
        return component_key(self.name, self.component_id)

    @property
    def fails_report(self) -> bool:
        """A critical failure makes the whole report fail (503)."""
        return self.critical and self.status is Status.FAIL
