"""docs/DEPLOYMENT.md tells the truth: its overlay example renders against this repository and sets
every per-installation value, and the files and manifests its commands name exist."""

from __future__ import annotations

import re

import yaml

from .conftest import REPO, deploy_copy_with_secrets, find, load_all, pod_templates, render

DEPLOYMENT_DOC = REPO / "docs" / "DEPLOYMENT.md"
# Objects the docs name that the operators create, not these manifests.
OPERATOR_OBJECTS = {"prometheus-operated": "the prometheus-operator's Service for every Prometheus"}


def overlay_example() -> str:
    section = DEPLOYMENT_DOC.read_text().split("## Your overlay", 1)[1]
    return re.search(r"```yaml\n(.*?)```", section, re.S).group(1)


def test_overlay_example_renders_and_replaces_every_placeholder_value(tmp_path):
    text = overlay_example()
    overlay = tmp_path / "isp-config" / "dotmac"
    overlay.mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text(text)
    # The example sits beside a checkout of the repository in ../../dotmac-platform, whose secret env
    # files the operator has filled in.
    checkout = tmp_path / "dotmac-platform"
    checkout.mkdir()
    deploy_copy_with_secrets(checkout)
    output = render(overlay)
    objects = load_all(output)
    for placeholder in ("example.com", "example.net", "203.0.113."):
        assert placeholder not in output, f"{placeholder} is left in the rendered overlay"
    host = "portal.isp.example.org"
    for name in ("dotmac-platform", "dotmac-platform-internal-paths"):
        ingress = find(objects, "Ingress", name)
        assert [r["host"] for r in ingress["spec"]["rules"]] == [host]
        assert ingress["spec"]["tls"][0]["hosts"] == [host]
    assert find(objects, "Certificate", "dotmac-platform-tls")["spec"]["dnsNames"] == [host]
    assert find(objects, "ConfigMap", "dotmac-platform-config")["data"]["ALLOWED_HOSTS"] == host
    app = [(o, t) for o, t in pod_templates(objects) if o["metadata"]["name"].startswith("dotmac-platform")]
    assert {o["kind"] for o, _ in app} == {"Deployment", "Job", "CronJob"}
    images = {c["image"] for _, template in app for c in template["spec"]["containers"]}
    assert len(images) == 1 and re.fullmatch(
        r"registry\.isp\.example\.org/dotmac-platform@sha256:[0-9a-f]{64}", images.pop()
    )
    # Every runbook link now starts with the installation's base.
    rule = find(objects, "PrometheusRule", "dotmac-platform")
    base = "https://wiki.isp.example.org/dotmac/OPERATIONS.md"
    urls = [r["annotations"]["runbook_url"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert urls and all(re.fullmatch(re.escape(base) + r"#[a-z]+", url) for url in urls), urls
    assert len(objects) == len(load_all(render(checkout / "deploy" / "overlays" / "production")))


def test_paths_and_objects_named_in_the_docs_exist(rendered):
    text = DEPLOYMENT_DOC.read_text() + (REPO / "docs" / "OPERATIONS.md").read_text()
    # (deploy/<name> alone is kubectl's short form of deployment/<name>, checked below.)
    for path in set(
        re.findall(r"\b(deploy/(?:docker|kubernetes|prometheus|grafana|gunicorn|yamllint)[\w./-]*\w)", text)
    ):
        assert (REPO / path).exists(), f"the docs name {path}, which does not exist"
    names = {o["metadata"]["name"] for o in rendered}
    for kind, name in set(
        re.findall(r"\b(deploy|deployment|job|certificate|svc|sts|hpa)/([\w-]+)\b(?![./])", text)
    ):
        if kind == "deploy" and (REPO / "deploy" / name).exists():
            continue  # a path under deploy/, not kubectl's deploy/<name>
        if "<" not in name and name not in OPERATOR_OBJECTS:
            assert name in names, f"the docs name {kind}/{name}, which the manifests do not define"
    for command in re.findall(r"kubectl apply -f (deploy/kubernetes/[\w.-]+)", text):
        assert yaml.safe_load_all((REPO / command).read_text())


def test_the_readme_documents_every_management_command_of_the_project():
    commands = {path.stem for path in REPO.glob("apps/*/management/commands/*.py") if path.stem != "__init__"}
    readme = (REPO / "README.md").read_text()
    undocumented = sorted(name for name in commands if f"`manage.py {name}" not in readme)
    assert not undocumented, f"commands missing from the README's operator commands: {undocumented}"
