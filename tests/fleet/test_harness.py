"""The fleet harness itself: pods configured from the rendered manifests, deletion the Kubernetes way."""

from __future__ import annotations

import time

import pytest

from tests.fleet.controller import Controller
from tests.fleet.manifests import web_tier
from tests.fleet.pods import container_env
from tests.servers import wait_until


def test_a_pod_environment_is_the_configmap_then_the_env_entries_with_services_resolved():
    web = web_tier()
    names = ("DJANGO_SECRET_KEY", "OPS_API_TOKEN", "METRICS_BEARER_TOKEN", "PROVISIONING_API_TOKEN")
    secrets = {key: f"secret-{key}" for key in (*names, "POSTGRES_PASSWORD", "REDIS_PASSWORD")}
    services = {"dotmac-postgres:5432": "127.0.0.1:5999", "dotmac-redis:6379": "127.0.0.1:6999"}
    env = container_env(web.container, secrets=secrets, services=services)
    for key, value in web.container.config.items():
        if key not in {entry["name"] for entry in web.container.env}:
            assert env[key] == value, key
    assert env["DATABASE_URL"] == "postgres://dotmac:secret-POSTGRES_PASSWORD@127.0.0.1:5999/dotmac"
    assert env["REDIS_URL"] == "redis://:secret-REDIS_PASSWORD@127.0.0.1:6999/0"
    assert env["DJANGO_SECRET_KEY"] == "secret-DJANGO_SECRET_KEY"
    # The probes the controller runs are the manifest's, on its named ports.
    assert web.container.readiness.path == "/ready"
    assert web.container.ports[web.container.readiness.port] == int(env["PROBE_PORT"])


class RecordingIngress:
    def __init__(self) -> None:
        self.endpoints: list[list[int]] = []

    def set_endpoints(self, ports: list[int]) -> None:
        self.endpoints.append(list(ports))


def test_a_ready_set_arriving_after_a_newer_one_is_ignored():
    # Two pods turning ready together publish [a] then [a, b]; their timers may fire in either order.
    ingress = RecordingIngress()
    controller = Controller(ingress, propagation_lag=0)
    controller._apply(2, [8001, 8002])
    controller._apply(1, [8001])
    controller._apply(3, [8002])
    assert ingress.endpoints == [[8001, 8002], [8002]]


@pytest.mark.fleet
@pytest.mark.servers
@pytest.mark.slow
def test_a_deleted_pod_leaves_the_endpoints_after_the_lag_and_stops_within_its_grace_period(fleet_factory):
    fleet = fleet_factory()
    doomed, survivor = fleet.controller.pods
    deleted_at = time.monotonic()
    kubelet = fleet.controller.delete(doomed)
    wait_until(
        lambda: set(fleet.ingress.endpoints) == {survivor.http_port},
        timeout=fleet.propagation_lag + 10,
        message="the deleted pod out of the ingress",
    )
    removed_at = fleet.ingress.history[-1][0]
    assert removed_at - deleted_at >= fleet.propagation_lag  # the watch delay, not at once
    kubelet.join(timeout=fleet.web.termination_grace_seconds + 10)
    assert not kubelet.is_alive() and not doomed.running
    stopped = time.monotonic() - deleted_at
    assert stopped <= fleet.web.termination_grace_seconds  # SIGTERM drained it before any SIGKILL
    assert "drain" in doomed.server.stderr_text().lower()  # it was told to stop, not killed
    assert fleet.staff()[0].request("list", "GET", "/subscribers/").status == 200  # the survivor serves
