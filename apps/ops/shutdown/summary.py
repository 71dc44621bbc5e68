"""What a process logs as it ends: the requests a kill cuts short, and one line summarising its drain."""

from __future__ import annotations

import logging
import os
import time

from . import state
from .cleanup import CleanupResult, flush_logs, run_cleanups

logger = logging.getLogger(__package__)  # every line of the drain under one logger name


def log_requests_killed(reason: str) -> None:
    """Log each request still in flight: the process is about to be killed (``reason`` says why)."""
    for method, path, started in state.in_flight_requests():
        seconds = time.monotonic() - started
        fields = {
            "killed_reason": reason,
            "method": method,
            "path": path,
            "duration_seconds": round(seconds, 3),
        }
        message = "pid %d: request killed (%s): %s %s after %.2f s"
        logger.error(
            message, os.getpid(), reason, method, path, seconds, extra={"pid": os.getpid(), **fields}
        )
    flush_logs()


def finish_process() -> list[CleanupResult]:
    """Run the cleanup tasks, then log one line summarising the drain of this process."""
    results = run_cleanups()
    drain_seconds = state.seconds_stopping()
    fields = {
        "pid": os.getpid(),
        "drained": drain_seconds is not None,
        "still_running": len(state.in_flight_requests()),
        "cleanup": {result.name: result.status for result in results},
    }
    if drain_seconds is None:
        outcome = "exiting without a drain (not stopped by SIGTERM)"
    else:
        counts = {key: state.counts[key] for key in ("in_flight_at_stop", "completed", "refused")}
        fields.update(counts, drain_seconds=round(drain_seconds, 3))
        outcome = (
            f"drained in {drain_seconds:.2f} s: {counts['in_flight_at_stop']} in flight at stop, "
            f"{counts['completed']} completed, {counts['refused']} refused with 503, "
            f"{fields['still_running']} still running"
        )
    cleanup = ", ".join(f"{r.name} {r.status} {r.seconds * 1000:.0f} ms" for r in results)
    logger.info("pid %d %s; cleanup: %s", os.getpid(), outcome, cleanup, extra=fields)
    flush_logs()
    return results
