"""The Deployment and ReplicaSet controllers of the web pods, and the eviction API with their PDB.

What the routine operations need of Kubernetes' controllers, from the rendered Deployment and PDB
(``manifests.WebTier``):

- **Rolling update** (:meth:`Deployment.rollout`): a new pod template (here a new ``APP_VERSION``)
  replaces the pods as the Deployment controller does: new pods are created while old and new
  together stay within ``replicas + maxSurge``, and old pods are deleted only while at least
  ``replicas - maxUnavailable`` pods are available (ready) counting the new pods not yet ready as
  unavailable; not-ready old pods go first. Pods being deleted no longer count. The PDB plays no part.
- **Scaling** (:meth:`Deployment.scale`): the ReplicaSet creates pods up to ``replicas`` or deletes the
  surplus, not-ready pods first, then the most recently started (its ranking, for pods on one node).
- **Eviction** (:meth:`Deployment.drain`): ``kubectl drain`` asks the eviction API for every pod of the
  node at once, and retries a refused eviction every 5 s. The API refuses (429) when the eviction would
  leave fewer healthy pods than the PDB's ``minAvailable``; a pod not ready is evicted regardless
  (``unhealthyPodEvictionPolicy: AlwaysAllow``). An evicted pod is deleted, and the ReplicaSet creates
  its replacement at once, alongside the pod still draining.

Readiness is the kubelet's view (the controller's ready set), which the API server and the controllers
see before the ingress does; deletions go through :meth:`Controller.delete`, the Kubernetes way. Each
deleted pod's time to stop is recorded, to compare with its grace period.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from tests.fleet.cluster import Fleet
from tests.fleet.pods import Pod
from tests.servers import wait_until

EVICTION_RETRY_SECONDS = 5.0  # kubectl drain's wait after a refused eviction
RECONCILE_INTERVAL = 0.1


@dataclass
class Deletion:
    pod: str
    deleted_at: float
    stopped_at: float | None = None

    @property
    def seconds(self) -> float | None:
        return None if self.stopped_at is None else self.stopped_at - self.deleted_at


@dataclass
class Deployment:
    fleet: Fleet
    deletions: list[Deletion] = field(default_factory=list)
    evictions_refused: int = 0

    def __post_init__(self) -> None:
        self.web = self.fleet.web
        self.replicas = self.fleet.replicas
        self.version = next(iter({pod.version for pod in self.pods()}), "fleet-1")
        self._lock = threading.Lock()
        self._stopping: list[threading.Thread] = []

    # --- What the controllers see -----------------------------------------------------------------

    def pods(self) -> list[Pod]:
        """The pods not being deleted."""
        return [pod for pod in list(self.fleet.controller.pods) if not pod.terminating]

    def _ready(self, pods: list[Pod]) -> list[Pod]:
        ready = set(self.fleet.controller.ready_pods())
        return [pod for pod in pods if pod.name in ready]

    def delete(self, pod: Pod) -> None:
        deletion = Deletion(pod.name, time.monotonic())
        self.deletions.append(deletion)
        kubelet = self.fleet.controller.delete(pod)

        def stopped() -> None:
            kubelet.join()
            deletion.stopped_at = time.monotonic()

        watcher = threading.Thread(target=stopped, name=f"stopped-{pod.name}", daemon=True)
        watcher.start()
        self._stopping.append(watcher)

    def _deletion_order(self, pods: list[Pod]) -> list[Pod]:
        """The ReplicaSet's ranking of pods to delete: not ready first, then the newest."""
        ready = {pod.name for pod in self._ready(pods)}
        return sorted(pods, key=lambda pod: (pod.name in ready, -pod.started_at))

    # --- Rolling update ---------------------------------------------------------------------------

    def rollout(self, version: str, *, timeout: float) -> None:
        """Replace every pod by one of ``version``, as the Deployment's strategy says."""
        self.version = version
        min_available = self.replicas - self.web.max_unavailable
        deadline = time.monotonic() + timeout
        while True:
            pods = self.pods()
            old = [pod for pod in pods if pod.version != version]
            new = [pod for pod in pods if pod.version == version]
            new_ready = self._ready(new)
            if not old and len(new_ready) == self.replicas:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"rollout to {version}: old {len(old)}, new {len(new)}, ready {len(new_ready)}"
                )
            while len(old) + len(new) < self.replicas + self.web.max_surge and len(new) < self.replicas:
                new.append(self.fleet.add_pod(version))
            # Scale down old pods: never below min_available available, new pods not ready counted out.
            scalable = len(old) + len(new) - min_available - (len(new) - len(new_ready))
            available = len(self._ready(old)) + len(new_ready)
            for pod in self._deletion_order(old):
                if scalable <= 0:
                    break
                ready = pod.name in set(self.fleet.controller.ready_pods())
                if ready and available - 1 < min_available:
                    break
                self.delete(pod)
                scalable -= 1
                available -= 1 if ready else 0
            time.sleep(RECONCILE_INTERVAL)

    # --- Scaling (the ReplicaSet) -----------------------------------------------------------------

    def reconcile(self) -> None:
        """Create or delete pods until ``replicas`` are not being deleted."""
        with self._lock:
            pods = self.pods()
            for _ in range(self.replicas - len(pods)):
                self.fleet.add_pod(self.version)
            for pod in self._deletion_order(pods)[: max(0, len(pods) - self.replicas)]:
                self.delete(pod)

    def scale(self, replicas: int) -> None:
        self.replicas = replicas
        self.reconcile()

    def wait_settled(self, *, timeout: float) -> None:
        """Until ``replicas`` pods are ready and the ingress has exactly them (after the lag)."""

        def settled() -> bool:
            pods = self.pods()
            ready = self._ready(pods)
            ports = {pod.http_port for pod in ready}
            return len(pods) == len(ready) == self.replicas and set(self.fleet.ingress.endpoints) == ports

        wait_until(
            settled, timeout=timeout, interval=0.1, message=f"{self.replicas} ready pods in the ingress"
        )

    def wait_stopped(self, *, timeout: float) -> None:
        """Until every deleted pod has stopped."""
        for thread in self._stopping:
            thread.join(timeout=max(0.0, timeout))
        still = [deletion.pod for deletion in self.deletions if deletion.stopped_at is None]
        if still:
            raise TimeoutError(f"pods still stopping: {still}")

    # --- Eviction (kubectl drain) -----------------------------------------------------------------

    def evict(self, pod: Pod) -> bool:
        """The eviction API: delete ``pod`` unless that breaks the PDB (then False: a 429)."""
        with self._lock:
            pods = self.pods()
            healthy = self._ready(pods)
            if pod in healthy and len(healthy) - 1 < self.web.pdb_min_available:
                self.evictions_refused += 1
                return False
            self.delete(pod)
        self.reconcile()  # the ReplicaSet replaces it at once
        return True

    def drain(self, pods: list[Pod], *, timeout: float) -> None:
        """``kubectl drain`` of a node holding ``pods``: every eviction asked at once, each refused
        one again every 5 s, until all are evicted."""
        deadline = time.monotonic() + timeout
        errors: list[BaseException] = []

        def evict_until_allowed(pod: Pod) -> None:
            try:
                while not self.evict(pod):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"eviction of {pod.name} refused until the deadline")
                    time.sleep(EVICTION_RETRY_SECONDS)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=evict_until_allowed, args=(pod,), daemon=True) for pod in pods]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=timeout + 10)
        if errors:
            raise errors[0]

    def figures(self) -> dict:
        stops = [deletion.seconds for deletion in self.deletions if deletion.seconds is not None]
        return {
            "pods_deleted": len(self.deletions),
            "slowest_stop_seconds": max(stops, default=0.0),
            "grace_period_seconds": self.web.termination_grace_seconds,
        }
