"""Probe a server the way the kubelet does: ``/ready`` and ``/live`` over plain HTTP, periodically.

The readiness checks (and the ``health_check_status`` gauges they set) run when something asks
``/ready``; in a cluster that is the kubelet. The prober keeps every answer, so a test can tell
what Kubernetes would have seen.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from tests.e2e.app_server import AppServer


@dataclass(frozen=True)
class ProbeResult:
    at: float
    path: str
    status: int | None  # None: no answer within the probe's timeout


@dataclass
class Kubelet:
    server: AppServer
    period: float = 1.0
    timeout: float = 2.0  # the Deployment's timeoutSeconds
    results: list[ProbeResult] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kubelet-prober", daemon=True)
        self._lock = threading.Lock()

    def _probe(self, path: str) -> None:
        try:
            status = self.server.request("GET", path, forwarded_https=False, timeout=self.timeout).status
        except OSError:
            status = None
        with self._lock:
            self.results.append(ProbeResult(time.monotonic(), path, status))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._probe("/ready")
            self._probe("/live")
            self._stop.wait(self.period)

    def start(self) -> Kubelet:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def seen(self, path: str, *, since: float = 0.0) -> list[int | None]:
        with self._lock:
            return [result.status for result in self.results if result.path == path and result.at >= since]
