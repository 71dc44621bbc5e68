"""A changed setting or secret rolls the pods: kustomize names each generated ConfigMap and Secret by
a hash of its content and writes that name into every pod template (and the ServiceMonitor) that
references it, so a new value is a new pod template, which the Deployment rolls out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import base_name, deploy_copy_with_secrets, find, load_all, pod_templates, render

APP_WORKLOADS = (
    ("Deployment", "dotmac-platform"),
    ("Job", "dotmac-platform-migrate"),
    ("CronJob", "dotmac-platform-activate-pending"),
)


def referenced_names(objects: list[dict]) -> dict[tuple[str, str], set[str]]:
    """(workload kind, name) -> the ConfigMap and Secret names its pod template references."""
    found = {}
    for workload, template in pod_templates(objects):
        names = set()
        for container in template["spec"]["containers"]:
            names |= {source["configMapRef"]["name"] for source in container.get("envFrom", [])}
            names |= {
                entry["valueFrom"]["secretKeyRef"]["name"]
                for entry in container.get("env", [])
                if "secretKeyRef" in entry.get("valueFrom", {})
            }
        found[(workload["kind"], workload["metadata"]["name"])] = names
    return found


def edit(path: Path, key: str, value: str) -> None:
    text, count = re.subn(rf"^{key}=.*$", f"{key}={value}", path.read_text(), flags=re.M)
    assert count == 1, f"{path.name} sets {key} once"
    path.write_text(text)


@pytest.fixture
def deploy_dir(tmp_path) -> Path:
    return deploy_copy_with_secrets(tmp_path)


def test_a_changed_setting_changes_the_configmap_name_every_app_pod_template_references(deploy_dir):
    before = load_all(render(deploy_dir / "kubernetes"))
    assert load_all(render(deploy_dir / "kubernetes")) == before, "the same content renders the same names"
    edit(deploy_dir / "kubernetes" / "dotmac-platform-config.env", "LOG_LEVEL", "WARNING")
    after = load_all(render(deploy_dir / "kubernetes"))

    old_map = find(before, "ConfigMap", "dotmac-platform-config")
    new_map = find(after, "ConfigMap", "dotmac-platform-config")
    assert (old_map["data"]["LOG_LEVEL"], new_map["data"]["LOG_LEVEL"]) == ("INFO", "WARNING")
    old_name, new_name = old_map["metadata"]["name"], new_map["metadata"]["name"]
    assert old_name != new_name and base_name(old_name) == base_name(new_name)
    old_refs, new_refs = referenced_names(before), referenced_names(after)
    for workload in APP_WORKLOADS:
        assert old_name in old_refs[workload] and new_name in new_refs[workload], workload
        assert old_name not in new_refs[workload], f"{workload} still reads the old settings"
    # The Deployment's pod template differs, so applying it starts a rollout.
    assert (
        find(before, "Deployment", "dotmac-platform")["spec"]["template"]
        != find(after, "Deployment", "dotmac-platform")["spec"]["template"]
    )


def test_a_changed_secret_changes_its_name_in_the_pod_templates_and_the_servicemonitor(deploy_dir):
    overlay = deploy_dir / "overlays" / "production"
    before = load_all(render(overlay))
    edit(deploy_dir / "kubernetes" / "secrets" / "metrics.env", "METRICS_BEARER_TOKEN", "rotated-token")
    after = load_all(render(overlay))

    old_name = find(before, "Secret", "dotmac-metrics")["metadata"]["name"]
    new_name = find(after, "Secret", "dotmac-metrics")["metadata"]["name"]
    assert old_name != new_name
    # Only that Secret's name changed: the others keep theirs.
    unchanged = {o["metadata"]["name"] for o in before if o["kind"] == "Secret"} - {old_name}
    assert unchanged == {o["metadata"]["name"] for o in after if o["kind"] == "Secret"} - {new_name}
    web = ("Deployment", "dotmac-platform")
    assert old_name in referenced_names(before)[web] and new_name in referenced_names(after)[web]
    (endpoint,) = find(after, "ServiceMonitor", "dotmac-platform")["spec"]["endpoints"]
    assert endpoint["authorization"]["credentials"]["name"] == new_name, "Prometheus reads the new token"
    # Every Secret reference of the rendered overlay names a Secret it renders.
    rendered_secrets = {o["metadata"]["name"] for o in after if o["kind"] == "Secret"}
    for workload, names in referenced_names(after).items():
        secret_refs = {n for n in names if not n.startswith("dotmac-platform-config")}
        assert secret_refs <= rendered_secrets, workload


def test_a_setting_patched_by_an_overlay_is_in_the_hash_too(deploy_dir):
    """An installation sets its values with patches in its own overlay: those roll the pods as well."""
    overlay = deploy_dir / "installation"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "resources: [../overlays/production]\n"
        "patches:\n"
        "  - target: {kind: ConfigMap, name: dotmac-platform-config}\n"
        "    patch: |-\n"
        "      - {op: replace, path: /data/LOG_LEVEL, value: WARNING}\n"
    )
    before = load_all(render(deploy_dir / "overlays" / "production"))
    after = load_all(render(overlay))
    old_name = find(before, "ConfigMap", "dotmac-platform-config")["metadata"]["name"]
    new_map = find(after, "ConfigMap", "dotmac-platform-config")
    assert new_map["data"]["LOG_LEVEL"] == "WARNING" and new_map["metadata"]["name"] != old_name
    for workload in APP_WORKLOADS:
        assert new_map["metadata"]["name"] in referenced_names(after)[workload], workload
