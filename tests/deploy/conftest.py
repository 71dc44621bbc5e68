"""Fixtures of the deployment tests: the offline validators, and the manifests rendered once per session.

The validators live in ``.venv-tools`` (``make venv-tools``; checkov's pins conflict with the dev
tools), kubectl on the PATH or in that virtualenv, promtool from Debian's ``prometheus`` package.
A missing tool fails the test with the command that installs it: nothing is skipped.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/deploy carries the ``deploy`` marker (`make test-fast` leaves them out)."""
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.deploy)


DEPLOY = REPO / "deploy"
KUBERNETES_DIR = DEPLOY / "kubernetes"
TOOLS_BIN = REPO / ".venv-tools" / "bin"


def tool(name: str) -> str:
    """Path of a validator from the tools virtualenv (or, for kubectl and promtool, the system)."""
    if name in {"kubectl", "promtool"} and shutil.which(name):
        return shutil.which(name)
    candidate = TOOLS_BIN / name
    if candidate.exists():
        return str(candidate)
    hint = "apt-get install prometheus" if name == "promtool" else "make venv-tools"
    pytest.fail(f"{name} is not installed: run `{hint}` (make test does it)")


def run(args: list[str], *, timeout: float = 120, cwd: Path = REPO, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, **kwargs)


def load_all(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render(directory: Path) -> str:
    result = run([tool("kubectl"), "kustomize", str(directory)])
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return result.stdout


# kustomize's generators append "-" and a 10-character hash of the content to the name.
_GENERATED_SUFFIX = re.compile(r"-[bcdfghkmt2-9]{10}$")


def base_name(name: str) -> str:
    """The name an object is known by in the manifests: a generated name without its content hash."""
    return _GENERATED_SUFFIX.sub("", name)


def find(objects: list[dict], kind: str, name: str) -> dict:
    """The one object of ``kind`` named ``name`` (for generated objects: ``name`` plus its hash)."""
    matches = [o for o in objects if o["kind"] == kind and base_name(o["metadata"]["name"]) == name]
    assert len(matches) == 1, f"expected exactly one {kind}/{name}, found {len(matches)}"
    return matches[0]


def config_map_data(objects: list[dict]) -> dict[str, str]:
    """The app's settings: the data of the generated ConfigMap dotmac-platform-config."""
    return find(objects, "ConfigMap", "dotmac-platform-config")["data"]


def pod_templates(objects: list[dict]) -> list[tuple[dict, dict]]:
    """(workload, pod template) for every object that creates pods (a CronJob through its Jobs)."""
    templates = []
    for o in objects:
        if o["kind"] in {"Deployment", "StatefulSet", "Job"}:
            templates.append((o, o["spec"]["template"]))
        elif o["kind"] == "CronJob":
            templates.append((o, o["spec"]["jobTemplate"]["spec"]["template"]))
    return templates


@pytest.fixture(scope="session")
def rendered_text() -> str:
    """``kubectl kustomize deploy/kubernetes``, exactly as an operator runs it."""
    return render(KUBERNETES_DIR)


@pytest.fixture(scope="session")
def rendered(rendered_text: str) -> list[dict]:
    return load_all(rendered_text)


@pytest.fixture(scope="session")
def placeholder_secrets() -> list[dict]:
    """deploy/kubernetes/secrets.yaml: the placeholder form of the Secrets (not in the kustomization)."""
    return load_all((KUBERNETES_DIR / "secrets.yaml").read_text())


def deploy_copy_with_secrets(destination: Path) -> Path:
    """A copy of deploy/ with every secret env file made from its template, as an operator fills them."""
    work = destination / "deploy"
    shutil.copytree(DEPLOY, work, ignore=shutil.ignore_patterns("*.env", "__pycache__"))
    # The app's settings file is an env file too, but tracked: bring it back.
    for env_file in KUBERNETES_DIR.glob("*.env"):
        shutil.copy(env_file, work / "kubernetes" / env_file.name)
    examples = sorted((work / "kubernetes" / "secrets").glob("*.env.example"))
    assert examples, "deploy/kubernetes/secrets has no *.env.example templates"
    for example in examples:
        lines = []
        for line in example.read_text().splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                assert value == "", f"{example.name}: the template must not carry a value for {key}"
                line = f"{key}=generated-{key.lower()}"
            lines.append(line)
        example.with_suffix("").write_text("\n".join(lines) + "\n")
    return work


@pytest.fixture(scope="session")
def deploy_copy(tmp_path_factory) -> Path:
    """deploy/ with the secret env files filled in, for rendering the overlays (read-only for tests)."""
    return deploy_copy_with_secrets(tmp_path_factory.mktemp("deploy"))


OVERLAYS = ("production", "staging")
# Components an overlay may add, each rendered on top of the production overlay.
COMPONENTS = ("gateway-api",)


@pytest.fixture(scope="session")
def renders(rendered_text: str, deploy_copy: Path) -> dict[str, str]:
    """The text of every kustomization an operator applies: the base and each overlay of deploy/overlays
    (rendered with its Secrets, from a copy of deploy/ whose secret env files are filled in)."""
    names = sorted(p.name for p in (DEPLOY / "overlays").iterdir() if (p / "kustomization.yaml").exists())
    assert tuple(names) == tuple(sorted(OVERLAYS)), "every overlay is validated"
    components = sorted(p.parent.name for p in (DEPLOY / "components").glob("*/kustomization.yaml"))
    assert tuple(components) == tuple(sorted(COMPONENTS)), "every component is validated"
    texts = {"base": rendered_text} | {name: render(deploy_copy / "overlays" / name) for name in OVERLAYS}
    for component in COMPONENTS:
        # An installation's overlay: production plus the component.
        overlay = deploy_copy / "with-components" / component
        overlay.mkdir(parents=True, exist_ok=True)
        (overlay / "kustomization.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kustomize.config.k8s.io/v1beta1",
                    "kind": "Kustomization",
                    "resources": ["../../overlays/production"],
                    "components": [f"../../components/{component}"],
                }
            )
        )
        texts[f"production+{component}"] = render(overlay)
    return texts


@pytest.fixture(scope="session")
def overlays_rendered(renders: dict[str, str]) -> dict[str, list[dict]]:
    """The objects of each overlay, by overlay name."""
    return {name: load_all(renders[name]) for name in OVERLAYS}


@pytest.fixture(scope="session")
def generated_secrets(overlays_rendered) -> list[dict]:
    """The Secrets of deploy/kubernetes/secrets, as the production overlay generates them."""
    return [o for o in overlays_rendered["production"] if o["kind"] == "Secret"]


@pytest.fixture(scope="session")
def cluster_objects(rendered: list[dict], placeholder_secrets: list[dict]) -> list[dict]:
    """Everything that exists in the namespace once deployed: the manifests plus the Secrets."""
    return rendered + placeholder_secrets


# Series that come from Prometheus itself, the kubelet (cAdvisor) and kube-state-metrics.
EXTERNAL_SERIES = {
    "up": "Prometheus sets it for every scrape target",
    "container_cpu_usage_seconds_total": "the kubelet's cAdvisor",
    "container_memory_working_set_bytes": "the kubelet's cAdvisor",
    "kube_pod_container_resource_limits": "kube-state-metrics",
    "kube_pod_status_ready": "kube-state-metrics",
    "kube_pod_container_status_waiting_reason": "kube-state-metrics",
    "kube_pod_container_status_restarts_total": "kube-state-metrics",
    "kube_deployment_spec_replicas": "kube-state-metrics",
    "kube_deployment_status_replicas_available": "kube-state-metrics",
    "kube_deployment_status_replicas_updated": "kube-state-metrics",
    "kube_horizontalpodautoscaler_status_desired_replicas": "kube-state-metrics",
    "kube_horizontalpodautoscaler_spec_max_replicas": "kube-state-metrics",
    "kube_job_failed": "kube-state-metrics",
    "kube_cronjob_status_last_successful_time": "kube-state-metrics",
    "kube_cronjob_spec_suspend": "kube-state-metrics",
    "kube_cronjob_created": "kube-state-metrics",
}
# Labels Prometheus attaches to every series scraped through the ServiceMonitor.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "endpoint", "container"}


@pytest.fixture
def served_metrics(db, client) -> Iterator[dict[str, set[str]]]:
    """Series names (and label names) the app's ``/metrics`` exposes after some real activity."""
    from apps.ops.breakers import get_breaker
    from tests.ops.breaker_support import clear_local_breakers

    from .code_facts import declared_label_names, served_series

    get_breaker("provisioning")  # so circuit_breaker_state has a sample with its labels
    client.get("/accounts/login/")
    client.get("/ready")
    response = client.get("/metrics")
    assert response.status_code == 200, response.content[:200]
    series = served_series(response.content.decode())
    for name, labels in declared_label_names().items():
        series.setdefault(name, set()).update(labels)
    yield series
    clear_local_breakers()


def unknown_series_and_labels(expressions: list[str], served: dict[str, set[str]]) -> list[str]:
    """Selectors of PromQL expressions that name a series, or a label of it, nobody exposes."""
    from .code_facts import selectors

    found = []
    for expr in expressions:
        for name, matchers in selectors(expr):
            if name in EXTERNAL_SERIES:
                continue
            if name not in served:
                found.append(f"{name}: not exposed by /metrics")
                continue
            known = served[name] | TARGET_LABELS
            found += [
                f"{name}: no label {label!r}" for label in matchers if served[name] and label not in known
            ]
    return found
