"""The shipped Kubernetes manifests, rendered by ``kubectl kustomize``, read as the fleet harness needs.

Nothing of what the harness does is copied from the manifests by hand: the ConfigMap's values, the
web container's env and ports, its probes, the termination grace period, ``preStop``, the rolling
update strategy, the PDB, the Ingress annotations, the migration Job and the activation CronJob all
come from here, so
a change to a manifest changes how the fleet behaves.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from tests.servers import PROJECT_DIR, ServerError

KUSTOMIZE_DIR = PROJECT_DIR / "deploy" / "kubernetes"
WEB_COMPONENT = "web"


def kubectl() -> str:
    """The system's kubectl, or the one `make venv-tools` installs."""
    found = shutil.which("kubectl") or PROJECT_DIR / ".venv-tools" / "bin" / "kubectl"
    if not Path(found).exists():
        raise ServerError("kubectl not found; `make venv-tools` (part of `make test`) installs it")
    return str(found)


@lru_cache(maxsize=1)
def rendered() -> tuple[dict, ...]:
    """Every object ``kubectl kustomize deploy/kubernetes`` renders."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(KUSTOMIZE_DIR)], capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise ServerError(f"kubectl kustomize failed:\n{result.stderr}")
    return tuple(document for document in yaml.safe_load_all(result.stdout) if document)


def _one(
    kind: str, component: str | None = None, name: str | None = None, *, documents: tuple[dict, ...] = ()
) -> dict:
    found = [
        document
        for document in documents or rendered()
        if document["kind"] == kind
        and (name is None or document["metadata"]["name"] == name)
        and (
            component is None
            or document["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
        )
    ]
    if len(found) != 1:
        raise LookupError(f"expected one {kind} (component {component!r}, name {name!r}), found {len(found)}")
    return found[0]


@dataclass(frozen=True)
class Probe:
    """A container probe as the kubelet runs it (HTTP GET only: the manifests use nothing else)."""

    path: str
    port: str | int
    period: float
    timeout: float
    failure_threshold: int
    success_threshold: int
    initial_delay: float

    @classmethod
    def from_spec(cls, spec: dict) -> Probe:
        action = spec["httpGet"]
        return cls(
            path=action["path"],
            port=action["port"],
            period=float(spec.get("periodSeconds", 10)),
            timeout=float(spec.get("timeoutSeconds", 1)),
            failure_threshold=int(spec.get("failureThreshold", 3)),
            success_threshold=int(spec.get("successThreshold", 1)),
            initial_delay=float(spec.get("initialDelaySeconds", 0)),
        )


@dataclass(frozen=True)
class Container:
    """What a pod template's container says about how to run the app."""

    config: dict[str, str]  # the ConfigMaps of envFrom, merged in order
    env: tuple[dict, ...]  # the env entries, in order ($(VAR) expands from earlier ones)
    command: tuple[str, ...]  # empty: the image's entrypoint (gunicorn)
    ports: dict[str, int]
    startup: Probe | None
    liveness: Probe | None
    readiness: Probe | None
    pre_stop: tuple[str, ...]  # an exec preStop hook's command, empty when there is none

    @classmethod
    def from_pod_spec(cls, pod_spec: dict, documents: tuple[dict, ...] = ()) -> Container:
        [container] = pod_spec["containers"]
        config: dict[str, str] = {}
        for source in container.get("envFrom", []):
            config.update(_config_map(source["configMapRef"]["name"], documents))
        probes = {
            kind: Probe.from_spec(container[f"{kind}Probe"]) if f"{kind}Probe" in container else None
            for kind in ("startup", "liveness", "readiness")
        }
        pre_stop = container.get("lifecycle", {}).get("preStop", {})
        if pre_stop and "exec" not in pre_stop:
            raise NotImplementedError(f"preStop {pre_stop}: the harness runs exec hooks only")
        return cls(
            config=config,
            env=tuple(container.get("env", [])),
            command=tuple(container.get("command", [])) + tuple(container.get("args", [])),
            ports={port["name"]: int(port["containerPort"]) for port in container.get("ports", [])},
            pre_stop=tuple(pre_stop.get("exec", {}).get("command", [])),
            **probes,
        )

    def port_number(self, port: str | int) -> int:
        return port if isinstance(port, int) else self.ports[port]


def _config_map(name: str, documents: tuple[dict, ...] = ()) -> dict[str, str]:
    config_map = _one("ConfigMap", name=name, documents=documents)
    return {key: str(value) for key, value in config_map["data"].items()}


def _count(value: int | str, replicas: int, *, round_up: bool) -> int:
    """An int-or-percent field (maxSurge, maxUnavailable, minAvailable) as a number of pods."""
    if isinstance(value, int):
        return value
    percent = int(value.rstrip("%"))
    whole, rest = divmod(percent * replicas, 100)
    return whole + (1 if round_up and rest else 0)


@dataclass(frozen=True)
class WebTier:
    """The Deployment of the web pods, with its PDB and the Ingress in front of it."""

    replicas: int
    container: Container
    termination_grace_seconds: float
    max_surge: int
    max_unavailable: int
    pdb_min_available: int
    ingress_annotations: dict[str, str]
    denied_paths: tuple[str, ...]  # paths the internal-paths Ingress refuses to every client


@dataclass(frozen=True)
class CronJob:
    """A CronJob's schedule and limits, and the container it runs."""

    schedule: str
    concurrency_policy: str
    starting_deadline_seconds: float | None
    active_deadline_seconds: float | None
    container: Container

    @property
    def period_seconds(self) -> float:
        """The interval of an every-N-minutes schedule (``* * * * *``, ``*/N * * * *``)."""
        minute, *rest = self.schedule.split()
        match = re.fullmatch(r"\*(?:/(\d+))?", minute)
        if not match or any(field != "*" for field in rest):
            raise NotImplementedError(
                f"schedule {self.schedule!r}: the harness runs every-N-minutes schedules"
            )
        return 60.0 * int(match.group(1) or 1)


def web_tier(documents: tuple[dict, ...] = ()) -> WebTier:
    """The web tier of the rendered manifests, or of ``documents`` (a modified copy of them)."""
    documents = documents or rendered()
    deployment = _one("Deployment", component=WEB_COMPONENT, documents=documents)
    spec = deployment["spec"]
    pod_spec = spec["template"]["spec"]
    replicas = int(spec.get("replicas") or _autoscaler_minimum(deployment, documents) or 1)
    rolling = spec.get("strategy", {}).get("rollingUpdate", {})
    pdb = _one("PodDisruptionBudget", name=deployment["metadata"]["name"], documents=documents)["spec"]
    ingresses = [document for document in documents if document["kind"] == "Ingress"]
    public = [ingress for ingress in ingresses if not _denies_everyone(ingress)]
    denied = [ingress for ingress in ingresses if _denies_everyone(ingress)]
    if len(public) != 1:
        raise LookupError(f"expected one public Ingress, found {len(public)}")
    return WebTier(
        replicas=replicas,
        container=Container.from_pod_spec(pod_spec, documents),
        termination_grace_seconds=float(pod_spec.get("terminationGracePeriodSeconds", 30)),
        max_surge=_count(rolling.get("maxSurge", "25%"), replicas, round_up=True),
        max_unavailable=_count(rolling.get("maxUnavailable", "25%"), replicas, round_up=False),
        pdb_min_available=_count(pdb["minAvailable"], replicas, round_up=True),
        ingress_annotations=dict(public[0]["metadata"].get("annotations", {})),
        denied_paths=tuple(
            path["path"]
            for ingress in denied
            for rule in ingress["spec"]["rules"]
            for path in rule["http"]["paths"]
        ),
    )


def _autoscaler_minimum(deployment: dict, documents: tuple[dict, ...]) -> int | None:
    """``minReplicas`` of the HPA scaling ``deployment``: the count it keeps when the Deployment leaves
    ``replicas`` to it (the HPA raises a new Deployment from 1 to it at its first sync)."""
    for document in documents:
        target = document.get("spec", {}).get("scaleTargetRef", {})
        if (
            document["kind"] == "HorizontalPodAutoscaler"
            and target.get("kind") == "Deployment"
            and target.get("name") == deployment["metadata"]["name"]
        ):
            return int(document["spec"].get("minReplicas", 1))
    return None


def _denies_everyone(ingress: dict) -> bool:
    annotation = (
        ingress["metadata"]
        .get("annotations", {})
        .get("nginx.ingress.kubernetes.io/denylist-source-range", "")
    )
    return {"0.0.0.0/0", "::/0"} <= {part.strip() for part in annotation.split(",")}


@dataclass(frozen=True)
class Job:
    """A Job's limits and the container it runs."""

    active_deadline_seconds: float | None
    backoff_limit: int
    container: Container


def migration_job() -> Job:
    """The Job that applies the database migrations of a release, before its pods roll out."""
    spec = _one("Job", component="migrate")["spec"]
    return Job(
        active_deadline_seconds=spec.get("activeDeadlineSeconds"),
        backoff_limit=int(spec.get("backoffLimit", 6)),
        container=Container.from_pod_spec(spec["template"]["spec"]),
    )


def activation_cronjob() -> CronJob:
    cronjob = _one("CronJob", component="activation")
    spec = cronjob["spec"]
    job_spec = spec["jobTemplate"]["spec"]
    return CronJob(
        schedule=spec["schedule"],
        concurrency_policy=spec.get("concurrencyPolicy", "Allow"),
        starting_deadline_seconds=spec.get("startingDeadlineSeconds"),
        active_deadline_seconds=job_spec.get("activeDeadlineSeconds"),
        container=Container.from_pod_spec(job_spec["template"]["spec"]),
    )
