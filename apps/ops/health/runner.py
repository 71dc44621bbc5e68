"""Run checks concurrently under one overall deadline, with a per-process TTL cache and single flight
(docs/ARCHITECTURE.md, "Probes", "Under faults"). Every fresh result sets the ``health_check_*``
gauges.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future

from django.conf import settings
from django.db import connections

from apps.ops.metrics.definitions import HEALTH_CHECK_DURATION, HEALTH_CHECK_STATUS

from .base import CheckResult, HealthCheck, HealthCheckError, Observation, Status
from .report import HealthReport

logger = logging.getLogger(__name__)


@dataclasses.dataclass(eq=False)
class _Slot:
    """One check's cached result and its run in flight, if any (read and written under ``lock``)."""

    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    result: CheckResult | None = None
    expires: float = 0.0
    running: Future[CheckResult] | None = None
    run_started: float = 0.0

    def keep(self, result: CheckResult) -> None:
        self.result = result
        self.expires = time.monotonic() + float(settings.HEALTH_CACHE_TTL)


class _CheckThreads:
    """Daemon threads kept from run to run (a thread per run costs GIL handoffs; an executor's threads
    are joined at exit); a task goes to an idle one, or to a new one when all are busy, so a hung
    check delays no other. Single flight bounds them to the number of checks."""

    def __init__(self) -> None:
        self._tasks: queue.SimpleQueue[tuple[Future[CheckResult], HealthCheck, _Slot]] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._numbers = itertools.count(1)

    def submit(self, check: HealthCheck, slot: _Slot) -> Future[CheckResult]:
        future: Future[CheckResult] = Future()
        if not self._idle.acquire(blocking=False):
            name = f"health-check-{next(self._numbers)}"
            threading.Thread(target=self._work, name=name, daemon=True).start()
        self._tasks.put((future, check, slot))
        return future

    def _work(self) -> None:
        while True:
            future, check, slot = self._tasks.get()
            result = _execute(check)
            try:
                connections.close_all()  # the check's connections go back to the pool
            except Exception:
                logger.exception("closing the database connections of health check %s failed", check.key)
            with slot.lock:
                slot.keep(result)
                slot.running = None
            # Idle before the result is out: a caller it wakes that starts another run at once
            # reuses this thread instead of starting a new one.
            self._idle.release()
            future.set_result(result)


_slots: dict[str, _Slot] = {}
_threads = _CheckThreads()


def _after_fork_in_child() -> None:
    # A forked child (a gunicorn worker) inherits neither the threads nor the runs in flight.
    global _threads
    _threads = _CheckThreads()
    _slots.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def reset() -> None:
    """Forget cached results (tests). Runs still in flight finish into the forgotten slots."""
    _slots.clear()


def run_checks(checks: Sequence[HealthCheck]) -> HealthReport:
    """Run ``checks`` (or reuse fresh results) and return the report within the overall deadline."""
    deadline = float(settings.HEALTH_CHECK_DEADLINE)
    started = time.monotonic()
    results: dict[int, CheckResult] = {}
    waiting: list[tuple[int, HealthCheck, _Slot, Future[CheckResult], float]] = []
    inline: list[tuple[int, HealthCheck, _Slot | None]] = []

    # Hand the blocking checks to their threads first, so they wait on the network while this
    # thread runs the others.
    for index, check in enumerate(checks):
        if not check.cached:
            inline.append((index, check, None))
            continue
        slot = _slots.get(check.key) or _slots.setdefault(check.key, _Slot())
        with slot.lock:
            if slot.result is not None and time.monotonic() < slot.expires:
                results[index] = slot.result
            elif not check.blocking:
                inline.append((index, check, slot))
            else:
                if slot.running is None:
                    slot.running = _threads.submit(check, slot)
                    slot.run_started = time.monotonic()
                waiting.append((index, check, slot, slot.running, slot.run_started))

    for index, check, slot in inline:
        results[index] = _execute(check)
        if slot is not None:
            with slot.lock:
                slot.keep(results[index])

    for index, check, slot, run, run_started in waiting:
        timeout = check.timeout_within(deadline)
        give_up_at = min(started + deadline, run_started + timeout)
        try:
            results[index] = run.result(max(0.0, give_up_at - time.monotonic()))
        except TimeoutError:
            results[index] = _timed_out(check, slot, run, run_started, timeout)

    # Criticality is configuration, not an observation: take it from the current checks.
    return HealthReport(
        results=[
            results[index]
            if results[index].critical == check.critical
            else dataclasses.replace(results[index], critical=check.critical)
            for index, check in enumerate(checks)
        ]
    )


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


def _timed_out(
    check: HealthCheck, slot: _Slot, run: Future[CheckResult], run_started: float, timeout: float
) -> CheckResult:
    """A failure for a run that is still going; cached like any result until the run returns."""
    elapsed = time.monotonic() - run_started
    result = check.result(
        Status.FAIL, elapsed, f"no answer within {timeout:g} s (still waiting after {elapsed:.1f} s)"
    )
    with slot.lock:
        if slot.running is run:  # the run has not finished meanwhile: its result would be newer
            slot.keep(result)
    _record(result)
    return result


_last_status: dict[str, Status] = {}


def _record(result: CheckResult) -> None:
    """Metrics for every fresh result, and one log line when a check changes status."""
    try:
        HEALTH_CHECK_STATUS.labels(check=result.key).set(result.status.gauge_value)
        HEALTH_CHECK_DURATION.labels(check=result.key).set(result.duration)
    except Exception:  # a metrics problem must not turn into a failed probe
        logger.exception("recording the metrics of health check %s failed", result.key)
    previous = _last_status.get(result.key)
    _last_status[result.key] = result.status
    if previous is not result.status and (previous is not None or result.status is not Status.PASS):
        log = logger.info if result.status is Status.PASS else logger.warning
        output = f": {result.output}" if result.output else ""
        extra = {"check": result.key, "status": result.status.value}
        log("health check %s is now %s%s", result.key, result.status.value, output, extra=extra)
