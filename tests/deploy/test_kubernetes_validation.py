"""The rendered manifests pass the real offline validators.

``kubectl kustomize`` renders them; ``kubernetes-validate --strict`` validates every built-in object
against Kubernetes 1.30 and the newest schema it bundles (a missing schema is a failure); the
prometheus-operator and cert-manager objects are checked structurally (crd_shapes.py); checkov's
Kubernetes policies report zero failed checks, each skip justified on the object; yamllint is clean.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from .conftest import COMPONENTS, DEPLOY, KUBERNETES_DIR, OVERLAYS, load_all, run, tool
from .crd_shapes import GATEWAY_API, SHAPES, problems

GATEWAY_API_KINDS = {(GATEWAY_API, "Gateway"), (GATEWAY_API, "HTTPRoute")}

KUBERNETES_VERSIONS_REQUIRED = ("1.30.0",)
CUSTOM_API_GROUPS = ("monitoring.coreos.com/", "cert-manager.io/", "gateway.networking.k8s.io/")
# What operators apply: the base (deploy/kubernetes) and each overlay (deploy/overlays).
RENDERS = ("base", *OVERLAYS, *(f"production+{component}" for component in COMPONENTS))


def is_custom(obj: dict) -> bool:
    return obj["apiVersion"].startswith(CUSTOM_API_GROUPS)


@pytest.fixture(scope="session")
def newest_bundled_kubernetes() -> str:
    python = Path(tool("kubernetes-validate")).parent / "python"
    result = run([str(python), "-c", "import kubernetes_validate.utils as u; print(u.latest_version())"])
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_kustomize_renders_every_manifest_file(rendered):
    kustomization = yaml.safe_load((KUBERNETES_DIR / "kustomization.yaml").read_text())
    listed = kustomization["resources"]
    on_disk = {p.name for p in KUBERNETES_DIR.glob("*.yaml")} - {"kustomization.yaml", "secrets.yaml"}
    files = {r for r in listed if r.endswith(".yaml")}
    assert files == on_disk, "every manifest file is in the kustomization (secrets.yaml on purpose not)"
    # Beside the files: the dashboard's kustomization; the settings come from their env file.
    assert set(listed) - files == {"../grafana"}
    (generator,) = kustomization["configMapGenerator"]
    assert generator["envs"] == [p.name for p in KUBERNETES_DIR.glob("*.env")]
    kinds = {o["kind"] for o in rendered}
    for kind in ("Namespace", "ConfigMap", "StatefulSet", "Deployment", "Service", "PodDisruptionBudget",
                 "HorizontalPodAutoscaler", "Job", "CronJob", "Ingress", "NetworkPolicy", "ServiceMonitor",
                 "PrometheusRule", "Certificate"):  # fmt: skip
        assert kind in kinds


@pytest.mark.parametrize("name", RENDERS)
def test_kubernetes_validate_strict_accepts_every_builtin_object(
    name, renders, placeholder_secrets, newest_bundled_kubernetes, tmp_path
):
    objects = load_all(renders[name])
    if name == "base":
        objects += placeholder_secrets  # the base alone runs with the placeholder Secrets
    builtin = [o for o in objects if not is_custom(o)]
    assert any(o["kind"] == "Secret" for o in builtin), "the Secrets the pods read are validated too"
    manifest = tmp_path / "builtin.yaml"
    manifest.write_text(yaml.safe_dump_all(builtin))
    versions = (*KUBERNETES_VERSIONS_REQUIRED, newest_bundled_kubernetes)
    args = [tool("kubernetes-validate"), "--strict"]
    for version in versions:
        args += ["-k", version]
    result = run([*args, str(manifest)])
    output = result.stdout + result.stderr
    # kubernetes-validate exits 0 when it has no schema for a kind and only warns: that is a failure here.
    assert result.returncode == 0, output
    assert not re.search(r"^(WARN|ERROR|FATAL)", output, re.MULTILINE), output
    passed = re.findall(r"^INFO .* passed for resource (\S+) against version (\S+)$", output, re.MULTILINE)
    assert len(passed) == len(builtin) * len(versions), output
    assert {v for _, v in passed} == {".".join(v.split(".")[:2]) for v in versions}


@pytest.mark.parametrize("name", RENDERS)
def test_custom_resources_match_the_operator_apis(name, renders):
    custom = [o for o in load_all(renders[name]) if is_custom(o)]
    kinds = {(o["apiVersion"], o["kind"]) for o in custom}
    assert kinds <= set(SHAPES), f"no shape to check {kinds - set(SHAPES)} against"
    if name == "base":
        assert kinds | GATEWAY_API_KINDS == set(SHAPES), "every shape is used"
    if name == "production+gateway-api":
        assert GATEWAY_API_KINDS <= kinds
    for obj in custom:
        found = problems(obj, SHAPES[(obj["apiVersion"], obj["kind"])])
        assert not found, f"{obj['kind']}/{obj['metadata']['name']}: " + "; ".join(found)


def test_structural_check_rejects_typos_and_wrong_types():
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "x"},
        "spec": {"selector": {}, "endpoints": [{"port": "http", "intervall": "30s", "interval": 30}]},
    }
    found = problems(monitor, SHAPES[("monitoring.coreos.com/v1", "ServiceMonitor")])
    assert any("intervall: unknown field" in p for p in found)
    assert any("interval: expected string" in p for p in found)
    route = {
        "apiVersion": GATEWAY_API,
        "kind": "HTTPRoute",
        "metadata": {"name": "x"},
        "spec": {
            "hostnames": ["Portal.example.org"],
            "rules": [
                {
                    "matches": [{"path": {"type": "Prefix", "value": "/"}}],
                    "backendRefs": [{"name": "svc", "port": 70000}],
                    "timeouts": {"request": "65 s", "backendRequst": "65s"},
                }
            ],
        },
    }
    found = problems(route, SHAPES[(GATEWAY_API, "HTTPRoute")])
    for expected in ("hostnames[0]", "'Prefix' is not one of", "70000 is not within", "request: '65 s'",
                     "backendRequst: unknown field"):  # fmt: skip
        assert any(expected in p for p in found), (expected, found)


@pytest.fixture(scope="session")
def checkov_reports(renders, tmp_path_factory) -> dict[str, dict]:
    """checkov over each render (the base with the placeholder Secrets), once per session."""
    reports = {}
    for name, text in renders.items():
        directory = tmp_path_factory.mktemp(f"checkov-{name}")
        (directory / "rendered.yaml").write_text(text)
        if name == "base":
            (directory / "secrets.yaml").write_text((KUBERNETES_DIR / "secrets.yaml").read_text())
        # --skip-download: no policy metadata from the vendor's API (offline, deterministic).
        result = run(
            [tool("checkov"), "--framework", "kubernetes", "--directory", str(directory), "--skip-download",
             "--output", "json"],
            timeout=300,
        )  # fmt: skip
        assert result.stdout.strip(), f"checkov printed no report for {name}:\n{result.stderr}"
        report = json.loads(result.stdout)
        report["_exit_code"] = result.returncode
        reports[name] = report
    return reports


@pytest.mark.parametrize("name", RENDERS)
def test_checkov_reports_zero_failed_checks(name, checkov_reports):
    report = checkov_reports[name]
    summary = report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in report["results"]["failed_checks"]
    ]
    assert summary["failed"] == 0 and not failed, "\n".join(failed)
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 100, "checkov evaluated the workloads"
    assert report["_exit_code"] == 0


@pytest.mark.parametrize("name", RENDERS)
def test_every_checkov_skip_is_justified_and_still_needed(name, renders, checkov_reports):
    annotated = set()
    for obj in load_all(renders[name]):
        for key, value in (obj["metadata"].get("annotations") or {}).items():
            if key.startswith("checkov.io/skip"):
                check_id, _, reason = value.partition("=")
                assert len(reason.split()) >= 5, (
                    f"{obj['kind']}/{obj['metadata']['name']} {check_id}: say why"
                )
                annotated.add((obj["kind"], obj["metadata"]["name"], check_id))
    skipped = {
        (c["resource"].split(".")[0], c["resource"].split(".")[-1], c["check_id"])
        for c in checkov_reports[name]["results"]["skipped_checks"]
    }
    # A skip for a check that would pass anyway hides nothing and only misleads the reader.
    assert annotated == skipped


def test_yamllint_is_clean_on_everything_under_deploy():
    result = run(
        [tool("yamllint"), "--strict", "-f", "parsable", "-c", str(DEPLOY / "yamllint.yml"), "deploy/"]
    )
    assert result.returncode == 0, result.stdout + result.stderr
