"""Run checks concurrently under one overall deadline, with a per-process TTL cache and single flight.

- Every check that may block (network, devices) runs in a check thread; the caller waits for all of
  them until ``HEALTH_CHECK_DEADLINE`` (or a check's shorter ``timeout``) and then reports any check
  still running as failed. It never joins a hung thread. Checks that cannot block run in the
  caller's thread meanwhile.
- Check threads are daemon threads reused from run to run: each handoff to a thread costs a GIL
  switch, which on a busy worker waits out the interpreter's switch interval (5 ms), so a new
  thread per check per run made a probe several times slower than its round trips. A run goes to
  an idle thread, or to a new one when all are busy, so a hung check never delays another.
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
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence

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

    def keep(self, result: CheckResult) -> None:
        """Reuse ``result`` for ``HEALTH_CACHE_TTL`` seconds from now (the caller holds ``lock``)."""
        self.result = result
        self.expires = time.monotonic() + float(settings.HEALTH_CACHE_TTL)


_slots: dict[str, _Slot] = {}
_slots_lock = threading.Lock()


def _slot(key: str) -> _Slot:
    with _slots_lock:
        slot = _slots.get(key)
        if slot is None:
            slot = _slots[key] = _Slot()
        return slot


_Task = tuple[Callable[[], CheckResult], Callable[[CheckResult], None]]


class _CheckThreads:
    """Daemon threads that run check tasks, reused across runs.

    A task goes to an idle thread when there is one and to a new thread otherwise, so it never
    waits behind another task (a hung check keeps its thread to itself). Single flight means at
    most one task per check is in flight, which bounds the threads to the number of checks.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: queue.SimpleQueue[_Task] = queue.SimpleQueue()
        self._idle = 0
        self._started = 0

    def submit(self, task: Callable[[], CheckResult], then: Callable[[CheckResult], None]) -> None:
        """Run ``task()`` in a check thread, then ``then(its result)`` once the thread is idle again."""
        with self._lock:
            # Every queued task has a thread of its own: an idle one reserved here, or a new one.
            start_thread = self._idle == 0
            if start_thread:
                self._started += 1
                name = f"health-check-{self._started}"
            else:
                self._idle -= 1
            self._tasks.put((task, then))
        if start_thread:
            threading.Thread(target=self._work, args=(self._tasks,), name=name, daemon=True).start()

    def _work(self, tasks: queue.SimpleQueue) -> None:
        while True:
            task, then = tasks.get()
            try:
                outcome = task()
            except BaseException:  # tasks report their own errors; this only keeps the thread alive
                logger.exception("health check thread: a task raised")
                outcome = None
            with self._lock:
                self._idle += 1
            if outcome is not None:
                # Announced once this thread counts as idle: a caller woken by it that starts
                # another run at once reuses this thread instead of starting a new one. A thread
                # counted idle must stay alive, whatever ``then`` does.
                try:
                    then(outcome)
                except BaseException:
                    logger.exception("health check thread: publishing a result failed")


_threads = _CheckThreads()


def _new_threads_after_fork() -> None:
    # Threads do not survive fork(): a child (a gunicorn worker) starts with none, and a fresh lock.
    global _threads
    _threads = _CheckThreads()


os.register_at_fork(after_in_child=_new_threads_after_fork)


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
    inline: list[tuple[int, HealthCheck, _Slot | None]] = []

    # Hand the blocking checks to threads first, so they wait on the network while this thread
    # runs the others.
    for index, check in enumerate(checks):
        if not check.cached:
            inline.append((index, check, None))
            continue
        slot = _slot(check.key)
        start_run = False
        with slot.lock:
            if slot.result is not None and time.monotonic() < slot.expires:
                results[index] = slot.result
                continue
            if not check.blocking:
                inline.append((index, check, slot))
                continue
            run = slot.running
            if run is None:
                run = slot.running = _Run()
                start_run = True
        if start_run:
            _threads.submit(
                lambda check=check: _execute_in_thread(check),
                lambda result, slot=slot, run=run: _publish(result, slot, run),
            )
        waiting.append((index, check, slot, run))

    for index, check, slot in inline:
        results[index] = _execute(check)
        if slot is not None:
            with slot.lock:
                slot.keep(results[index])

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


def _execute_in_thread(check: HealthCheck) -> CheckResult:
    from django.db import connections

    try:
        return _execute(check)
    finally:
        # Return connections this thread took from the pool (or close them without a pool).
        try:
            connections.close_all()
        except Exception:
            logger.exception("closing the database connections of health check %s failed", check.key)


def _publish(result: CheckResult, slot: _Slot, run: _Run) -> None:
    """Cache the result of a run and wake the callers waiting for it."""
    with slot.lock:
        slot.keep(result)
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
            slot.keep(result)
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
