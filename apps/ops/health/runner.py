"""Run checks concurrently under one overall deadline, with a per-process TTL cache and single flight.

- Every check that talks to something runs in its own daemon thread; the caller waits for all of
  them until ``HEALTH_CHECK_DEADLINE`` (or a check's shorter ``timeout``) and then reports any check
  still running as failed. It never joins a hung thread.
- At most one run of a check is in flight per process. Callers that arrive while it runs wait for
  that same run (single flight); a run that outlived its timeout is reported failed at once, and a
  new one starts only after it returns. A hung dependency therefore holds at most one thread (and
  one connection) per check, however many probes arrive.
- A finished result is reused for ``HEALTH_CACHE_TTL`` seconds, so N probes per second cost one
  round trip per dependency per TTL per process.
- Database connections a check opened in its thread are closed (returned to the pool) when it ends.
- ``health_check_status`` and ``health_check_duration_seconds`` are set for every fresh result.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Sequence

from django.conf import settings

from .base import CheckResult, HealthCheck, HealthCheckError, Observation, Status
from .report import HealthReport

logger = logging.getLogger(__name__)


class _Run:
    """One execution of one check; concurrent callers wait on ``done``."""

    __slots__ = ("done", "result", "started")

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.done = threading.Event()
        self.result: CheckResult | None = None


class _Slot:
    """Per-check state: the cached result and the run in flight, if any."""

    __slots__ = ("expires", "lock", "result", "running")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.result: CheckResult | None = None
        self.expires = 0.0
        self.running: _Run | None = None


_slots: dict[str, _Slot] = {}
_slots_lock = threading.Lock()


def _slot(key: str) -> _Slot:
    with _slots_lock:
        slot = _slots.get(key)
        if slot is None:
            slot = _slots[key] = _Slot()
        return slot


def reset() -> None:
    """Forget cached results (tests). Runs still in flight finish into the forgotten slots."""
    with _slots_lock:
        _slots.clear()


def run_checks(checks: Sequence[HealthCheck]) -> HealthReport:
    """Run ``checks`` (or reuse fresh results) and return the report within the overall deadline."""
    deadline = float(settings.HEALTH_CHECK_DEADLINE)
    started = time.monotonic()
    results: dict[int, CheckResult] = {}
    waiting: list[tuple[int, HealthCheck, _Slot, _Run]] = []

    for index, check in enumerate(checks):
        if check.in_process:
            results[index] = _execute(check)
            continue
        slot = _slot(check.key)
        start_thread = False
        with slot.lock:
            if slot.result is not None and time.monotonic() < slot.expires:
                results[index] = slot.result
                continue
            run = slot.running
            if run is None:
                run = slot.running = _Run()
                start_thread = True
        if start_thread:
            threading.Thread(
                target=_run_in_thread, args=(check, slot, run), name=f"health-{check.key}", daemon=True
            ).start()
        waiting.append((index, check, slot, run))

    for index, check, slot, run in waiting:
        timeout = check.timeout_within(deadline)
        give_up_at = min(started + deadline, run.started + timeout)
        if run.done.wait(max(0.0, give_up_at - time.monotonic())) and run.result is not None:
            results[index] = run.result
        else:
            results[index] = _timed_out(check, slot, run, timeout)

    # Criticality is configuration, not an observation: take it from the current checks.
    ordered = [
        dataclasses.replace(results[index], critical=check.critical)
        if results[index].critical != check.critical
        else results[index]
        for index, check in enumerate(checks)
    ]
    return HealthReport(results=ordered)


def _run_in_thread(check: HealthCheck, slot: _Slot, run: _Run) -> None:
    from django.db import connections

    try:
        result = _execute(check)
    finally:
        # Return connections this thread took from the pool (or close them without a pool).
        try:
            connections.close_all()
        except Exception:
            logger.exception("closing the database connections of health check %s failed", check.key)
    with slot.lock:
        slot.result = result
        slot.expires = time.monotonic() + float(settings.HEALTH_CACHE_TTL)
        if slot.running is run:
            slot.running = None
    run.result = result
    run.done.set()


def _execute(check: HealthCheck) -> CheckResult:
    """Run one check in this thread and turn its outcome into a result (never raises)."""
    began = time.perf_counter()
    observation: Observation | None = None
    output = ""
    try:
        observation = check.run()
        status = Status.PASS
    except HealthCheckError as exc:
        status, output, observation = exc.status, exc.message, exc.observation
    except Exception as exc:
        # Internals (stack traces, hostnames, connection strings) go to the log, not the body.
        logger.exception("health check %s raised an unexpected error", check.key)
        status, output = Status.FAIL, f"unexpected error ({type(exc).__name__}); see the logs"
    result = check.result(status, time.perf_counter() - began, output, observation)
    _record(result)
    return result


def _timed_out(check: HealthCheck, slot: _Slot, run: _Run, timeout: float) -> CheckResult:
    """A failure for a run that is still going; cached like any result until the run returns."""
    elapsed = time.monotonic() - run.started
    output = f"no answer within {timeout:g} s (still waiting after {elapsed:.1f} s)"
    result = check.result(Status.FAIL, elapsed, output)
    with slot.lock:
        if slot.running is run:  # the run has not finished meanwhile: its result would be newer
            slot.result = result
            slot.expires = time.monotonic() + float(settings.HEALTH_CACHE_TTL)
    _record(result)
    return result


_last_status: dict[str, Status] = {}


def _record(result: CheckResult) -> None:
    """Metrics for every fresh result, and one log line when a check changes status."""
    try:
        from apps.ops.metrics.definitions import HEALTH_CHECK_DURATION, HEALTH_CHECK_STATUS

        HEALTH_CHECK_STATUS.labels(check=result.key).set(result.status.gauge_value)
        HEALTH_CHECK_DURATION.labels(check=result.key).set(result.duration)
    except Exception:  # a metrics problem must not turn into a failed probe
        logger.exception("recording the metrics of health check %s failed", result.key)
    previous = _last_status.get(result.key)
    _last_status[result.key] = result.status
    if previous is not result.status and (previous is not None or result.status is not Status.PASS):
        log = logger.info if result.status is Status.PASS else logger.warning
        log(
            "health check %s is now %s%s",
            result.key,
            result.status.value,
            f": {result.output}" if result.output else "",
            extra={"check": result.key, "status": result.status.value},
        )
