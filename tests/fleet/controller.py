"""The kubelet and the endpoints controller, as far as the fleet needs them.

Per pod, the kubelet's probes as the manifests declare them: the startup probe until it succeeds,
then liveness and readiness, each on its own period with its timeout and thresholds (HTTP GET,
success = 200 to 399 within the timeout). A pod failing its liveness probe ``failureThreshold`` times
in a row is restarted in place (SIGTERM, SIGKILL after the grace period, start again) and its
restarts are counted. The ready set goes to the ingress after ``propagation_lag`` seconds, the
delay with which ingress controllers learn of EndpointSlice changes through their watches.

Deleting a pod follows Kubernetes (``../shared/FLEET-NOTES.md``): the pod leaves the ready set at
once (its removal reaches the ingress after the lag; the readiness probe plays no part) and, in
parallel, the kubelet runs ``preStop`` and then sends SIGTERM, and SIGKILL once
``terminationGracePeriodSeconds`` (counted from ``preStop``) has passed.

Not emulated: scheduling, nodes, the API server, the HPA, image pulls.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tests.fleet.ingress import Ingress
from tests.fleet.manifests import Probe
from tests.fleet.pods import Pod

# How long EndpointSlice changes take to reach an ingress controller: typically 1 to 3 s, longer on a
# busy control plane. The routine operations are proven at both ends.
PROPAGATION_LAGS = (1.0, 3.0)
# The kubelet learns that a container exited by relisting the runtime's containers once a second
# (its PLEG), and restarts it at once the first time, then after 10 s, doubling up to 5 minutes.
RELIST_PERIOD = 1.0
RESTART_BACKOFF = (0.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0)


@dataclass(frozen=True)
class ProbeResult:
    pod: str
    kind: str  # startup | liveness | readiness
    at: float  # monotonic time the probe was sent
    ok: bool
    status: int  # 0: no answer (refused, timed out)
    seconds: float


def http_probe(port: int, probe: Probe) -> tuple[bool, int, float]:
    """One kubelet-style HTTP probe: (success, status, seconds)."""
    began = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=probe.timeout)
    try:
        connection.request("GET", probe.path, headers={"User-Agent": "kube-probe/1.33"})
        response = connection.getresponse()
        response.read()
        return 200 <= response.status < 400, response.status, time.monotonic() - began
    except (OSError, http.client.HTTPException):
        return False, 0, time.monotonic() - began
    finally:
        connection.close()


class Controller:
    """Probes every pod it manages and keeps the ingress' endpoints to the ready ones."""

    def __init__(self, ingress: Ingress, *, propagation_lag: float) -> None:
        self.ingress = ingress
        self.propagation_lag = propagation_lag
        self.pods: list[Pod] = []
        self.results: list[ProbeResult] = []
        self._ready: set[str] = set()
        self._started: set[str] = set()
        self._restarting: set[str] = set()
        #: pod name -> monotonic times it turned ready (in the kubelet's view, before the lag)
        self.ready_times: dict[str, list[float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._timers: list[threading.Timer] = []
        self._publications = 0  # numbered, so that a late timer cannot undo a newer ready set
        self._applied = 0
        self._apply_lock = threading.Lock()

    # --- Pods -----------------------------------------------------------------------------------

    def add(self, pod: Pod) -> Pod:
        """Start the pod's container and its probes."""
        with self._lock:
            self.pods.append(pod)
        pod.start()
        for kind in ("startup", "liveness", "readiness"):
            probe = getattr(pod.container, kind)
            if probe is not None:
                thread = threading.Thread(
                    target=self._probe_loop,
                    args=(pod, kind, probe),
                    name=f"probe-{pod.name}-{kind}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)
        watcher = threading.Thread(
            target=self._watch_container, args=(pod,), name=f"pleg-{pod.name}", daemon=True
        )
        watcher.start()
        self._threads.append(watcher)
        return pod

    def delete(self, pod: Pod) -> threading.Thread:
        """Delete the pod the Kubernetes way (see the module doc); returns the kubelet's thread."""
        with self._lock:
            pod.terminating = True
            self._ready.discard(pod.name)
            self._publish_locked()
        thread = threading.Thread(target=self._remove, args=(pod,), name=f"delete-{pod.name}", daemon=True)
        thread.start()
        return thread

    def _remove(self, pod: Pod) -> None:
        pod.terminate()
        with self._lock:
            if pod in self.pods:
                self.pods.remove(pod)

    def ready_pods(self) -> list[str]:
        with self._lock:
            return sorted(self._ready)

    def restarts(self) -> int:
        return sum(pod.restarts for pod in self.pods)

    def wait_ready(self, count: int, *, timeout: float) -> None:
        """Until ``count`` pods are ready and the ingress has them (after the lag)."""
        from tests.servers import wait_until

        def ingress_has_them() -> bool:
            with self._lock:
                ready_ports = {pod.http_port for pod in self.pods if pod.name in self._ready}
            return len(ready_ports) >= count and ready_ports <= set(self.ingress.endpoints)

        wait_until(
            ingress_has_them, timeout=timeout, interval=0.1, message=f"{count} ready pods in the ingress"
        )

    # --- Probes ---------------------------------------------------------------------------------

    def _probe_loop(self, pod: Pod, kind: str, probe: Probe) -> None:
        """One probe of one pod for the pod's life: the startup probe runs until it succeeds (again
        after each restart), liveness and readiness only while it has succeeded."""
        successes = failures = 0
        waiting_since = None
        while not self._stop.is_set() and not pod.terminating:
            if (pod.name in self._started) == (kind == "startup"):
                successes = failures = 0
                waiting_since = None
                self._stop.wait(0.05)
                continue
            if waiting_since is None:  # initialDelaySeconds counts from the container's start
                waiting_since = time.monotonic()
                if self._stop.wait(probe.initial_delay):
                    return
            began = time.monotonic()
            ok, status, seconds = http_probe(pod.port(probe.port), probe)
            with self._lock:
                self.results.append(ProbeResult(pod.name, kind, began, ok, status, seconds))
            successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
            if kind == "startup" and ok:
                with self._lock:
                    self._started.add(pod.name)
                continue
            if kind in ("startup", "liveness") and failures >= probe.failure_threshold:
                self._restart(pod)
                continue
            if kind == "readiness":
                self._set_ready(pod, ok, successes, failures, probe)
            self._stop.wait(max(0.0, probe.period - (time.monotonic() - began)))

    def _set_ready(self, pod: Pod, ok: bool, successes: int, failures: int, probe: Probe) -> None:
        with self._lock:
            ready = pod.name in self._ready
            if not ready and ok and successes >= probe.success_threshold and not pod.terminating:
                self._ready.add(pod.name)
                self.ready_times.setdefault(pod.name, []).append(time.monotonic())
                self._publish_locked()
            elif ready and not ok and failures >= probe.failure_threshold:
                self._ready.discard(pod.name)
                self._publish_locked()

    def _restart(self, pod: Pod) -> None:
        with self._lock:
            self._restarting.add(pod.name)
            self._not_running_locked(pod)
        try:
            pod.restart()
        finally:
            with self._lock:
                self._restarting.discard(pod.name)

    def _not_running_locked(self, pod: Pod) -> None:
        self._ready.discard(pod.name)
        self._started.discard(pod.name)
        self._publish_locked()

    def _watch_container(self, pod: Pod) -> None:
        """The kubelet noticing a container that exited by itself (killed, crashed): the pod is not
        ready at once (its removal reaches the ingress after the lag) and the container restarts in
        place after its back-off; the startup probe runs again."""
        while not self._stop.wait(RELIST_PERIOD) and not pod.terminating:
            with self._lock:
                if pod.running or pod.name in self._restarting or pod.terminating:
                    continue
                self._restarting.add(pod.name)
                self._not_running_locked(pod)
            try:
                backoff = RESTART_BACKOFF[min(pod.restarts, len(RESTART_BACKOFF) - 1)]
                if not self._stop.wait(backoff) and not pod.terminating:
                    pod.start_again()
            finally:
                with self._lock:
                    self._restarting.discard(pod.name)

    def _publish_locked(self) -> None:
        """Hand the current ready set to the ingress after the propagation lag."""
        ports = [pod.http_port for pod in self.pods if pod.name in self._ready and not pod.terminating]
        self._publications += 1
        self._later(lambda number=self._publications: self._apply(number, ports))

    def _apply(self, number: int, ports: list[int]) -> None:
        # Timers of two changes made moments apart (two pods turning ready together) can fire in
        # either order; the ingress takes the newest ready set and ignores an older one arriving late.
        with self._apply_lock:
            if number > self._applied and not self._stop.is_set():
                self._applied = number
                self.ingress.set_endpoints(ports)

    def _later(self, action: Callable[[], None]) -> None:
        timer = threading.Timer(self.propagation_lag, action)
        timer.daemon = True
        timer.start()
        self._timers.append(timer)

    def stop(self) -> None:
        """Stop probing (pods are left as they are)."""
        self._stop.set()
        for timer in self._timers:
            timer.cancel()
        with self._apply_lock:  # an ingress change under way finishes before the ingress is stopped
            pass
        for thread in self._threads:
            thread.join(timeout=5)
