"""The rendered manifests say what the production specification says, and match what the code serves.

Numbers are read from ``kubectl kustomize deploy/kubernetes``; names (environment variables, probe
paths, routes, ports) from the code (code_facts.py), never from a copied list.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys

import pytest
from django.test import Client

from .code_facts import env_names_read_by_code, ops_route_prefixes
from .conftest import REPO, base_name, config_map_data, find, pod_templates, run

NAMESPACE = "dotmac-production"
# Read by the code but deliberately not in the ConfigMap: fixed in the image when it is built
# (deploy/docker/Dockerfile), or superseded by another setting.
NOT_IN_CONFIGMAP = {
    "STATIC_ROOT": "the image collects static files into it at build time",
    "APP_VERSION": "set in the image from the build argument",
    "GUNICORN_BIND": "PORT decides the bind address",
}
# Pod-spec variables that only feed $(VAR) expansion into DATABASE_URL and REDIS_URL.
URL_PARTS = {"POSTGRES_PASSWORD", "REDIS_PASSWORD"}
# Read by libpq (psycopg) for every connection, not by the project's code: the migration Job's
# lock_timeout and statement_timeout (docs/DEPLOYMENT.md, "Schema changes").
MIGRATION_ONLY = {"PGOPTIONS"}


def seconds(text: str) -> float:
    return float(text)


_SUFFIXES = {"m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def quantity(text: str | int) -> float:
    """A Kubernetes resource quantity ("500m", "512Mi", "1") as a number."""
    number, suffix = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(text)).groups()
    return float(number) * _SUFFIXES[suffix]


@pytest.fixture(scope="module")
def deployment(rendered):
    return find(rendered, "Deployment", "dotmac-platform")


@pytest.fixture(scope="module")
def container(deployment):
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["dotmac-platform"]
    return containers[0]


@pytest.fixture(scope="module")
def config(rendered):
    return config_map_data(rendered)


# --- The specification's numbers ---------------------------------------------------------------


def test_the_autoscaler_owns_the_replica_count_starting_at_three(rendered, deployment):
    spec = deployment["spec"]
    # A replica count in the manifest would be applied by every release, resetting a scaled-out fleet.
    assert "replicas" not in spec
    hpa = find(rendered, "HorizontalPodAutoscaler", "dotmac-platform")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    # The first apply creates the Deployment at 1 pod; the HPA raises it to minReplicas at once.
    assert hpa["spec"]["minReplicas"] == 3
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1},
    }
    assert deployment["metadata"]["namespace"] == NAMESPACE


def test_container_requests_and_limits(container):
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"cpu": "500m", "memory": "1Gi"},
    }


def test_pods_spread_over_nodes_and_zones(deployment):
    pod = deployment["spec"]["template"]["spec"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    terms = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert [t["podAffinityTerm"]["topologyKey"] for t in terms] == ["kubernetes.io/hostname"]
    assert terms[0]["podAffinityTerm"]["labelSelector"]["matchLabels"] == selector
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"
    assert spread["labelSelector"]["matchLabels"] == selector


def test_pod_disruption_budget_keeps_two_available(rendered, deployment):
    pdb = find(rendered, "PodDisruptionBudget", "dotmac-platform")
    assert pdb["spec"]["minAvailable"] == 2
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_autoscaler_scales_three_to_ten_on_cpu_and_memory(rendered):
    hpa = find(rendered, "HorizontalPodAutoscaler", "dotmac-platform")
    spec = hpa["spec"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "dotmac-platform",
    }
    assert (spec["minReplicas"], spec["maxReplicas"]) == (3, 10)
    targets = {m["resource"]["name"]: m["resource"]["target"] for m in spec["metrics"]}
    assert targets == {
        "cpu": {"type": "Utilization", "averageUtilization": 70},
        "memory": {"type": "Utilization", "averageUtilization": 80},
    }


def test_autoscaler_scales_up_by_the_larger_of_half_or_two_pods_and_down_slowly(rendered):
    behavior = find(rendered, "HorizontalPodAutoscaler", "dotmac-platform")["spec"]["behavior"]
    up, down = behavior["scaleUp"], behavior["scaleDown"]
    assert up["selectPolicy"] == "Max"
    assert sorted((p["type"], p["value"], p["periodSeconds"]) for p in up["policies"]) == [
        ("Percent", 50, 60),
        ("Pods", 2, 60),
    ]
    assert [(p["type"], p["value"], p["periodSeconds"]) for p in down["policies"]] == [("Percent", 10, 60)]
    assert down["stabilizationWindowSeconds"] == 300


def test_grace_period_covers_drain_delay_graceful_timeout_and_a_margin(deployment, config):
    names = env_names_read_by_code()
    assert {"DRAIN_DELAY_SECONDS", "GUNICORN_GRACEFUL_TIMEOUT"} <= names
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    drain = seconds(config["DRAIN_DELAY_SECONDS"]) + seconds(config["GUNICORN_GRACEFUL_TIMEOUT"])
    assert drain >= 30, "the spec's 30 s drain timeout"
    assert grace >= drain + 5, f"grace {grace}s leaves no margin after a {drain}s drain"


def test_probes_hit_live_and_ready_with_timeouts_above_the_check_deadline(container, config):
    assert "HEALTH_CHECK_DEADLINE" in env_names_read_by_code()
    deadline = seconds(config["HEALTH_CHECK_DEADLINE"])
    ready, live, startup = container["readinessProbe"], container["livenessProbe"], container["startupProbe"]
    assert ready["httpGet"]["path"] == "/ready"
    assert live["httpGet"]["path"] == "/live"
    assert startup["httpGet"]["path"] == "/live"
    # Every probe asks the probe listener (PROBE_PORT), apart from the request threads.
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["probes"] == int(config["PROBE_PORT"]) != int(config["PORT"])
    for probe in (ready, live, startup):
        assert probe["httpGet"]["port"] == "probes"
    # /ready answers within the deadline; the kubelet must wait longer than that, with room for the
    # response to travel, or a slow-but-correct answer counts as a failure.
    assert ready["timeoutSeconds"] >= deadline + 1
    assert ready["periodSeconds"] > ready["timeoutSeconds"]
    # A liveness failure restarts the pod: it takes several consecutive misses.
    assert live["failureThreshold"] >= 3 and live["timeoutSeconds"] >= 1
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30, (
        "time to boot before liveness applies"
    )


def test_service_and_container_use_port_8000_and_probes_their_own_port(rendered, container, config):
    assert config["PORT"] == "8000"
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [
        ("http", 8000),
        ("probes", int(config["PROBE_PORT"])),
    ]
    # The Service exposes the app only: the probe port is for the kubelet.
    service = find(rendered, "Service", "dotmac-platform-service")
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        ("http", 8000, "http")
    ]


def test_pods_are_locked_down(rendered):
    for workload, template in pod_templates(rendered):
        name = f"{workload['kind']}/{workload['metadata']['name']}"
        pod = template["spec"]
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            assert not pod.get(key), name
        for volume in pod.get("volumes", []):
            assert set(volume) - {"name"} <= {"emptyDir", "secret", "configMap", "persistentVolumeClaim"}, (
                name
            )
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert context["runAsNonRoot"] is True, name
            assert context.get("privileged") is False, name


def test_app_runs_as_uid_1000_with_writable_tmp_and_metrics_dir_only(deployment, container, config):
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == container["securityContext"]["runAsUser"] == 1000
    assert pod["serviceAccountName"] == "dotmac-platform"
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    assert set(mounts) == {"/tmp", config["PROMETHEUS_MULTIPROC_DIR"]}
    assert all("emptyDir" in v for v in mounts.values())
    # gunicorn's own writable paths are on those volumes (or on /dev/shm, a tmpfs).
    for name in ("DATA_DIR", "GUNICORN_RUNTIME_DIR", "HEALTH_DISK_PATHS"):
        assert config[name].startswith("/tmp"), name
    assert config["GUNICORN_WORKER_TMP_DIR"] in {"/dev/shm", "/tmp"}


def test_migrations_run_once_per_release_in_a_job_not_in_the_pods(rendered, deployment, container):
    job = find(rendered, "Job", "dotmac-platform-migrate")
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    # manage.py migrate behind a SIGTERM handler (test_job_signals.py runs it as PID 1).
    assert migrate["command"][:2] == ["python", "-c"]
    assert 'sys.argv = ["manage.py", "migrate", "--noinput"]' in migrate["command"][2]
    assert migrate["image"] == container["image"]
    assert "command" not in container and "args" not in container, "the web pods run the image's gunicorn"
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 1 and job["spec"]["activeDeadlineSeconds"] > 0
    # The Job's pods are not web pods: the Service, PDB and HPA never count them.
    web_selector = deployment["spec"]["selector"]["matchLabels"]
    job_labels = job["spec"]["template"]["metadata"]["labels"]
    assert not web_selector.items() <= job_labels.items()
    # Same settings as the web pods, entry for entry (no drift), and enough to load production settings.
    web_env = {e["name"]: e for e in container["env"]}
    for entry in migrate["env"]:
        if entry["name"] not in MIGRATION_ONLY:
            assert entry == web_env[entry["name"]], entry["name"]
    assert "lock_timeout" in {e["name"]: e for e in migrate["env"]}["PGOPTIONS"]["value"]
    assert not MIGRATION_ONLY & web_env.keys(), "the web pods' queries keep the database's own timeouts"
    assert {"DJANGO_SECRET_KEY", "DATABASE_URL"} <= {e["name"] for e in migrate["env"]}
    assert migrate["envFrom"] == container["envFrom"]


ACTIVATION_CRONJOB = "dotmac-platform-activate-pending"


def test_pending_activations_are_retried_every_minute_one_run_at_a_time(rendered):
    cron = find(rendered, "CronJob", ACTIVATION_CRONJOB)
    spec, job = cron["spec"], cron["spec"]["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    period = 60
    assert cron["apiVersion"] == "batch/v1" and cron["metadata"]["namespace"] == NAMESPACE
    assert spec["schedule"] == "* * * * *" and not spec.get("suspend")
    assert spec["concurrencyPolicy"] == "Forbid"
    # The controller looks every 10 s: a shorter starting deadline may skip runs that were on time.
    assert 10 <= spec["startingDeadlineSeconds"] < period
    # A run, including the kubelet's grace period, ends before the next one is due.
    assert job["activeDeadlineSeconds"] + pod["terminationGracePeriodSeconds"] < period
    # The schedule retries: few retries within a run, and little history kept.
    assert 0 <= job["backoffLimit"] <= 2
    assert 1 <= spec["successfulJobsHistoryLimit"] <= 3 and 1 <= spec["failedJobsHistoryLimit"] <= 5
    assert 0 < job["ttlSecondsAfterFinished"] <= 24 * 3600
    assert pod["restartPolicy"] == "Never"


def test_activation_cronjob_runs_the_command_like_the_web_pods(rendered, deployment, container):
    from django.core.management import get_commands

    cron = find(rendered, "CronJob", ACTIVATION_CRONJOB)
    template = cron["spec"]["jobTemplate"]["spec"]["template"]
    pod = template["spec"]
    (runner,) = pod["containers"]
    assert runner["command"][:2] == ["python", "-c"]
    assert 'sys.argv = ["manage.py", "activate_pending"]' in runner["command"][2]
    assert get_commands()["activate_pending"] == "apps.subscribers"
    assert runner["image"] == container["image"]
    # Its own component, in every label set: never a web pod for the Service, PDB and HPA.
    for labels in (cron["metadata"]["labels"], cron["spec"]["jobTemplate"]["metadata"]["labels"],
                   template["metadata"]["labels"]):  # fmt: skip
        assert labels["app.kubernetes.io/name"] == "dotmac-platform"
        assert labels["app.kubernetes.io/component"] == "activation"
    web_selector = deployment["spec"]["selector"]["matchLabels"]
    assert not web_selector.items() <= template["metadata"]["labels"].items()
    # The app's security context, exactly.
    web_pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"] == web_pod["securityContext"]
    assert runner["securityContext"] == container["securityContext"]
    assert pod["serviceAccountName"] == web_pod["serviceAccountName"]
    assert pod["automountServiceAccountToken"] is False
    # Same settings as the web pods, entry for entry, with what the command needs: settings, the
    # database, Redis (breaker state) and the provisioning API's token.
    web_env = {e["name"]: e for e in container["env"]}
    for entry in runner["env"]:
        assert entry == web_env[entry["name"]], entry["name"]
    assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "PROVISIONING_API_TOKEN"} <= {
        e["name"] for e in runner["env"]
    }
    assert runner["envFrom"] == container["envFrom"]
    # Requests and limits, no larger than a web pod's; a writable /tmp on a read-only root.
    resources, web_resources = runner["resources"], container["resources"]
    for kind in ("requests", "limits"):
        assert set(resources[kind]) == {"cpu", "memory"}, kind
        for name, value in resources[kind].items():
            assert 0 < quantity(value) <= quantity(web_resources[kind][name]), (kind, name)
    for name in ("cpu", "memory"):
        assert quantity(resources["requests"][name]) <= quantity(resources["limits"][name]), name
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in runner["volumeMounts"]}
    assert set(mounts) == {"/tmp"} and "emptyDir" in mounts["/tmp"]
    assert runner["securityContext"]["readOnlyRootFilesystem"] is True
    assert "ports" not in runner, "nothing connects to it"
    # The same justified checkov skips as the migration Job, which runs the same image the same way.
    job = find(rendered, "Job", "dotmac-platform-migrate")
    assert cron["metadata"]["annotations"] == job["metadata"]["annotations"]


# --- Names match what the code reads and serves ------------------------------------------------


def test_configmap_holds_every_non_secret_setting_the_code_reads(rendered, container, config):
    read = env_names_read_by_code()
    secret_env = {e["name"] for e in container["env"] if "valueFrom" in e}
    composed = {e["name"] for e in container["env"] if "value" in e}
    unknown = set(config) - read
    assert not unknown, f"ConfigMap keys the code never reads (typos?): {sorted(unknown)}"
    missing = read - set(config) - secret_env - composed - set(NOT_IN_CONFIGMAP)
    assert not missing, (
        f"settings read by the code but absent from deploy/kubernetes/configmap.yaml: {sorted(missing)}"
    )
    assert not set(config) & (secret_env | composed), "a setting comes from one place only"


def test_every_env_var_of_the_pods_is_read_by_the_code(rendered):
    read = env_names_read_by_code()
    for workload, template in pod_templates(rendered):
        if workload["metadata"]["labels"].get("app.kubernetes.io/name") != "dotmac-platform":
            continue
        for c in template["spec"]["containers"]:
            names = {e["name"] for e in c["env"]} - MIGRATION_ONLY
            assert names - URL_PARTS <= read, (
                f"{workload['metadata']['name']}: {sorted(names - URL_PARTS - read)}"
            )
            composed = " ".join(e.get("value", "") for e in c["env"])
            for part in URL_PARTS & names:
                assert f"$({part})" in composed, f"{part} is only there to build a URL"


def test_secrets_each_component_its_own_and_every_reference_resolves(
    rendered, placeholder_secrets, generated_secrets
):
    def shape(secrets):
        return {
            base_name(s["metadata"]["name"]): set(s.get("stringData") or s.get("data") or {}) for s in secrets
        }

    placeholders = shape(placeholder_secrets)
    assert placeholders == shape(generated_secrets), "secrets.yaml and deploy/kubernetes/secrets agree"
    assert all(len(keys) == 1 for keys in placeholders.values()), "one credential per Secret"
    assert {k for keys in placeholders.values() for k in keys} >= {
        "DJANGO_SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "OPS_API_TOKEN", "METRICS_BEARER_TOKEN",
    }  # fmt: skip
    assert not [o for o in rendered if o["kind"] == "Secret"], (
        "applying the manifests never overwrites secrets"
    )
    references = []
    for workload, template in pod_templates(rendered):
        for c in template["spec"]["containers"]:
            references += [e["valueFrom"]["secretKeyRef"] for e in c.get("env", []) if "valueFrom" in e]
    monitor = find(rendered, "ServiceMonitor", "dotmac-platform")
    references += [ep["authorization"]["credentials"] for ep in monitor["spec"]["endpoints"]]
    for ref in references:
        assert ref["key"] in placeholders.get(ref["name"], set()), ref
    used = {(r["name"], r["key"]) for r in references}
    assert used == {(name, key) for name, keys in placeholders.items() for key in keys}, "no unused Secret"


def test_no_real_secret_is_tracked(placeholder_secrets):
    for secret in placeholder_secrets:
        for value in secret["stringData"].values():
            assert value.startswith("REPLACE-ME"), secret["metadata"]["name"]
    ignored = run(["git", "check-ignore", "deploy/kubernetes/secrets/django.env"])
    assert ignored.returncode == 0, "env files with real values are ignored by git"
    tracked = run(["git", "ls-files", "deploy/kubernetes/secrets"]).stdout.split()
    assert tracked and not [p for p in tracked if p.endswith(".env")]


def test_configmap_values_load_in_production_settings_and_gunicorn(config, tmp_path):
    """The ConfigMap (plus dummy secrets) is a valid production configuration, parsed by the real code."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "REDIS_", "PYTEST_"))
    }
    env.update(config)
    env.update(
        DJANGO_SETTINGS_MODULE="dotmac.settings",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DATABASE_URL="postgres://dotmac:pw@dotmac-postgres:5432/dotmac",
        REDIS_URL="redis://:pw@dotmac-redis:6379/0",
        # Paths of the pod's volumes, moved under this test's temporary directory.
        DATA_DIR=str(tmp_path / "data"),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "multiproc"),
        GUNICORN_RUNTIME_DIR=str(tmp_path / "runtime"),
        PYTHONPATH=str(REPO),
    )
    probe = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({'debug': s.DEBUG, 'env': s.DJANGO_ENV, 'hosts': s.ALLOWED_HOSTS, "
        "'deadline': s.HEALTH_CHECK_DEADLINE, 'pool': s.DATABASE_POOL_MAX_SIZE}))"
    )
    result = run([sys.executable, "-c", probe], env=env)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["env"] == "production" and loaded["debug"] is False
    assert loaded["hosts"] == config["ALLOWED_HOSTS"].split(",")
    assert loaded["deadline"] == float(config["HEALTH_CHECK_DEADLINE"])
    check = run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    gunicorn = (
        "import runpy, json; ns = runpy.run_path('deploy/gunicorn.conf.py'); "
        "print(json.dumps({k: ns[k] for k in ('bind', 'workers', 'threads', 'graceful_timeout', "
        "'DRAIN_DELAY_SECONDS')}))"
    )
    result = run([sys.executable, "-c", gunicorn], env=env)
    assert result.returncode == 0, result.stderr
    server = json.loads(result.stdout.strip().splitlines()[-1])
    assert server["bind"] == [f"0.0.0.0:{config['PORT']}"], "listens on all addresses in the pod"
    assert server["workers"] == int(config["WEB_CONCURRENCY"])
    assert server["graceful_timeout"] == int(config["GUNICORN_GRACEFUL_TIMEOUT"])
    assert server["DRAIN_DELAY_SECONDS"] == float(config["DRAIN_DELAY_SECONDS"])


def test_probe_paths_are_answered_by_the_app_even_for_a_pod_ip_host(settings):
    """What the kubelet sends: Host is the pod IP, which ALLOWED_HOSTS does not list."""
    settings.ALLOWED_HOSTS = ["dotmac.example.com"]
    client = Client(HTTP_HOST="10.1.2.3:8000")
    live = client.get("/live")
    assert live.status_code == 200
    ready = client.get("/ready")
    assert ready.status_code in (200, 503)
    assert "status" in json.loads(ready.content)


def test_servicemonitor_scrapes_the_metrics_route_on_the_service_port(rendered):
    from django.urls import resolve

    monitor = find(rendered, "ServiceMonitor", "dotmac-platform")
    service = find(rendered, "Service", "dotmac-platform-service")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert resolve(endpoint["path"]).route == "metrics"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert service["metadata"]["namespace"] in monitor["spec"]["namespaceSelector"]["matchNames"]


# --- Ingress and network policies --------------------------------------------------------------


def test_ingress_serves_the_app_over_tls_with_rate_limits(rendered):
    ingress = find(rendered, "Ingress", "dotmac-platform")
    annotations = ingress["metadata"]["annotations"]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    for key in ("limit-rps", "limit-burst-multiplier", "limit-connections"):
        assert int(annotations[f"nginx.ingress.kubernetes.io/{key}"]) > 0
    certificate = find(rendered, "Certificate", "dotmac-platform-tls")
    issuer = certificate["spec"]["issuerRef"]
    assert find(rendered, issuer["kind"], issuer["name"])
    hosts = {h for rule in ingress["spec"]["rules"] for h in [rule["host"]]}
    for tls in ingress["spec"]["tls"]:
        assert tls["secretName"] == certificate["spec"]["secretName"]
        assert set(tls["hosts"]) <= set(certificate["spec"]["dnsNames"])
    assert hosts <= set(certificate["spec"]["dnsNames"])
    # One source of certificates: the Certificate object, not also cert-manager's ingress-shim.
    assert not [k for k in annotations if k.startswith("cert-manager.io/")]


def test_metrics_and_ops_api_are_refused_from_outside(rendered):
    internal = find(rendered, "Ingress", "dotmac-platform-internal-paths")
    public = find(rendered, "Ingress", "dotmac-platform")
    assert internal["metadata"]["annotations"]["nginx.ingress.kubernetes.io/denylist-source-range"] == (
        "0.0.0.0/0,::/0"
    )
    denied = [p["path"] for rule in internal["spec"]["rules"] for p in rule["http"]["paths"]]
    assert {r["host"] for r in internal["spec"]["rules"]} == {r["host"] for r in public["spec"]["rules"]}
    routes = ops_route_prefixes()
    assert routes, "apps.ops.urls serves routes"
    for route in routes:
        assert any(route.startswith(prefix) for prefix in denied), f"{route} is reachable from outside"
    for prefix in denied:
        assert any(route.startswith(prefix) for route in routes), f"{prefix} blocks nothing the app serves"


def _policies(rendered) -> dict[str, dict]:
    return {o["metadata"]["name"]: o["spec"] for o in rendered if o["kind"] == "NetworkPolicy"}


def _selects(selector: dict, labels: dict) -> bool:
    return selector.get("matchLabels", {}).items() <= labels.items()


def test_network_policies_deny_by_default_and_allow_only_the_needed_flows(rendered, config):
    policies = _policies(rendered)
    assert policies["default-deny-all"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    pods = {w["metadata"]["name"]: t["metadata"]["labels"] for w, t in pod_templates(rendered)}
    web, migrate = pods["dotmac-platform"], pods["dotmac-platform-migrate"]
    activation = pods[ACTIVATION_CRONJOB]
    postgres, redis = pods["dotmac-postgres"], pods["dotmac-redis"]

    def ingress_sources(labels) -> list[dict]:
        return [
            source
            for spec in policies.values()
            if "Ingress" in spec["policyTypes"]
            and spec["podSelector"]
            and _selects(spec["podSelector"], labels)
            for rule in spec.get("ingress", [])
            for source in rule["from"]
        ]

    def namespaces(sources) -> set[str]:
        return {s["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for s in sources}

    assert namespaces(ingress_sources(web)) == {"dotmac-ingress", "dotmac-monitoring"}
    # Clients reach the app's port only. The probe port needs no rule: the kubelet probes from the
    # pod's node, which NetworkPolicies always allow.
    opened = {
        port["port"]
        for spec in policies.values()
        if "Ingress" in spec["policyTypes"] and spec["podSelector"] and _selects(spec["podSelector"], web)
        for rule in spec.get("ingress", [])
        for port in rule["ports"]
    }
    assert opened == {int(config["PORT"])} and int(config["PROBE_PORT"]) not in opened
    assert ingress_sources(migrate) == [] and ingress_sources(activation) == []
    for backend in (postgres, redis):
        sources = ingress_sources(backend)
        assert sources and all(set(s) == {"podSelector"} for s in sources), "same-namespace pods only"
        for client in (web, migrate, activation):
            assert all(_selects(s["podSelector"], client) for s in sources)
        assert not any(
            _selects(s["podSelector"], postgres) or _selects(s["podSelector"], redis) for s in sources
        )
    # Egress of the app: PostgreSQL, Redis, DNS and one external CIDR for the provisioning API.
    egress = policies["dotmac-platform-egress"]
    for client in (web, migrate, activation):
        assert _selects(egress["podSelector"], client)
    ports = sorted((p["protocol"], p["port"]) for rule in egress["egress"] for p in rule["ports"])
    assert ports == [("TCP", 53), ("TCP", 443), ("TCP", 5432), ("TCP", 6379), ("UDP", 53)]
    blocks = [t["ipBlock"] for rule in egress["egress"] for t in rule["to"] if "ipBlock" in t]
    assert len(blocks) == 1 and blocks[0]["cidr"] != "0.0.0.0/0"


def test_namespaces_enforce_the_restricted_pod_security_profile(rendered):
    namespaces = {
        o["metadata"]["name"]: o["metadata"]["labels"] for o in rendered if o["kind"] == "Namespace"
    }
    assert set(namespaces) == {"dotmac-production", "dotmac-monitoring", "dotmac-ingress"}
    for labels in namespaces.values():
        for mode in ("enforce", "audit", "warn"):
            assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
