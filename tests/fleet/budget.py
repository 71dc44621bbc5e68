"""The web pod's timing budget, derived from the rendered manifests and the server's own configuration:
how a deleted pod stops (:func:`termination_budget`), and which side closes an idle connection
between the ingress and a pod (:func:`keep_alive`).

A deleted pod must stop before the kubelet's SIGKILL, ``terminationGracePeriodSeconds`` after it ran
``preStop``, and it must keep accepting connections until every proxy has learnt that it is gone:

- ``preStop`` (an exec ``sleep`` when the manifests have one) runs first; SIGTERM follows it;
- the master's drain then keeps serving for ``DRAIN_DELAY_SECONDS`` (``/ready`` answers 503), which
  together with ``preStop`` must cover the propagation lag of the endpoint change to the ingress;
- it closes the listeners once the workers took the connections already queued (at most
  ``ACCEPT_QUEUE_WAIT_SECONDS``), tells the workers to stop and waits ``graceful_timeout`` for them:
  each finishes its requests and runs its cleanup tasks within that time;
- the workers still running then are sent SIGABRT, to log what gets killed, and SIGKILL
  ``ABORT_GRACE_SECONDS`` later; the master exits.

The values are read the way the pod reads them: the container's environment from the manifests
(:func:`tests.fleet.pods.container_env`), handed to ``deploy/gunicorn.conf.py`` in a process of its
own, so a default or a renamed variable in the configuration file counts as much as the ConfigMap.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from apps.ops.breakers.config import DEFAULT_CONFIG
from apps.ops.shutdown.gunicorn_internals import ABORT_GRACE_SECONDS, ACCEPT_QUEUE_WAIT_SECONDS
from tests.fleet.ingress import setting
from tests.fleet.manifests import WebTier
from tests.fleet.pods import container_env
from tests.gunicorn import CONFIG
from tests.servers import PROJECT_DIR, ServerError, subprocess_env

# What the configuration file makes of an environment: the settings the budget needs.
_READ_SETTINGS = """
import json, runpy, sys
settings = runpy.run_path(sys.argv[1])
print(json.dumps({name: settings[name] for name in sys.argv[2:]}))
"""
SETTINGS = ("graceful_timeout", "keepalive", "timeout", "DRAIN_DELAY_SECONDS")
# What a request does besides waiting on an outbound call (queries, rendering), at most.
REQUEST_MARGIN_SECONDS = 1.0


def server_settings(env: dict[str, str]) -> dict[str, float]:
    """gunicorn's settings as ``deploy/gunicorn.conf.py`` computes them from ``env``."""
    result = subprocess.run(
        [sys.executable, "-c", _READ_SETTINGS, str(CONFIG), *SETTINGS],
        cwd=PROJECT_DIR, env={**subprocess_env(), **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if result.returncode != 0:
        raise ServerError(f"reading {CONFIG.name} failed:\n{result.stderr}")
    return {name: float(value) for name, value in json.loads(result.stdout).items()}


def pod_environment(web: WebTier) -> dict[str, str]:
    """The web container's environment from the manifests (secrets do not matter to the budget)."""
    return container_env(web.container, secrets=defaultdict(lambda: "unused"), services={})


def pre_stop_seconds(command: tuple[str, ...]) -> float:
    """How long an exec ``preStop`` hook holds SIGTERM back: ``sleep N``, also through ``sh -c``."""
    if not command:
        return 0.0
    shell = len(command) == 3 and command[0].endswith("sh") and command[1] == "-c"
    text = command[2] if shell else " ".join(command)
    found = re.fullmatch(r"(?:\S*/)?sleep\s+(\d+(?:\.\d+)?)", text.strip())
    if not found:
        raise NotImplementedError(f"preStop {command!r}: the budget knows a sleep only")
    return float(found.group(1))


@dataclass(frozen=True)
class TerminationBudget:
    pre_stop: float
    drain_delay: float
    accept_queue_wait: float
    graceful_timeout: float
    abort_grace: float
    grace_period: float  # terminationGracePeriodSeconds
    longest_request: float  # the longest outbound call a request may wait on (breakers' request_timeout)

    @property
    def steps(self) -> dict[str, float]:
        """Each step from the start of ``preStop`` to the master's exit, at its longest."""
        return {
            "preStop": self.pre_stop,
            "drain delay (DRAIN_DELAY_SECONDS)": self.drain_delay,
            "accept-queue wait": self.accept_queue_wait,
            "graceful timeout (requests and cleanup tasks)": self.graceful_timeout,
            "abort grace (SIGABRT to SIGKILL)": self.abort_grace,
        }

    @property
    def longest_stop(self) -> float:
        return sum(self.steps.values())

    @property
    def still_accepting(self) -> float:
        """Seconds from the deletion during which the pod still accepts new connections."""
        return self.pre_stop + self.drain_delay

    def time_for_a_request(self, *, propagation_lag: float) -> float:
        """How long a request the ingress sends at the last moment (``propagation_lag`` after the
        deletion) may run before its worker is killed at the graceful deadline (the accept-queue wait
        counted as nothing: it may be)."""
        return self.pre_stop + self.drain_delay + self.graceful_timeout - propagation_lag

    def problems(self, *, propagation_lag: float) -> list[str]:
        """What breaks the budget (empty: it holds) for an endpoint change taking ``propagation_lag``."""
        found = []
        allowed = self.time_for_a_request(propagation_lag=propagation_lag)
        if self.longest_request + REQUEST_MARGIN_SECONDS > allowed:
            found.append(
                f"the longest request ({self.longest_request:g} s, the breakers' request_timeout, "
                f"+ {REQUEST_MARGIN_SECONDS:g} s) may be cut: one the ingress sends {propagation_lag:g} s "
                f"after the deletion has {allowed:g} s before the graceful timeout kills its worker"
            )
        if self.longest_stop > self.grace_period:
            steps = " + ".join(f"{name} {value:g}" for name, value in self.steps.items())
            found.append(
                f"{steps} = {self.longest_stop:g} s exceeds terminationGracePeriodSeconds "
                f"{self.grace_period:g} s: the kubelet would SIGKILL a pod still draining"
            )
        if self.still_accepting < propagation_lag:
            found.append(
                f"preStop {self.pre_stop:g} + drain delay {self.drain_delay:g} = {self.still_accepting:g} s "
                f"is shorter than the propagation lag {propagation_lag:g} s: the ingress would still send "
                "new connections to closed listeners"
            )
        return found


def longest_request(env: Mapping[str, str]) -> float:
    """The longest a request may wait on an outbound call: the largest ``request_timeout`` among the
    breakers (the default, and those ``CIRCUIT_BREAKERS`` configures). Everything else a request does
    (queries, rendering) is counted in :data:`REQUEST_MARGIN_SECONDS`."""
    configured = json.loads(env.get("CIRCUIT_BREAKERS") or "{}")
    timeouts = [
        float(values.get("request_timeout", DEFAULT_CONFIG.request_timeout)) for values in configured.values()
    ]
    return max([DEFAULT_CONFIG.request_timeout, *timeouts])


def termination_budget(web: WebTier) -> TerminationBudget:
    env = pod_environment(web)
    settings = server_settings(env)
    return TerminationBudget(
        pre_stop=pre_stop_seconds(web.container.pre_stop),
        drain_delay=settings["DRAIN_DELAY_SECONDS"],
        accept_queue_wait=ACCEPT_QUEUE_WAIT_SECONDS,
        graceful_timeout=settings["graceful_timeout"],
        abort_grace=ABORT_GRACE_SECONDS,
        grace_period=web.termination_grace_seconds,
        longest_request=longest_request(env),
    )


# A request the proxy sends on an idle connection at the last moment of its timeout must reach the
# pod before the pod may close that connection: a second covers any network between them.
CLOSE_ORDER_MARGIN_SECONDS = 1.0


@dataclass(frozen=True)
class KeepAlive:
    """Idle timeouts of a connection between the ingress and a pod (``../shared/FLEET-NOTES.md``):
    the proxy must close first. If the pod closes first, a request the proxy sends at that moment
    meets a closing socket, and nginx passes a POST to no other pod: the client gets a 502."""

    proxy_idle_timeout: float  # the controller's upstream-keepalive-timeout
    pod_keepalive: float  # gunicorn's keepalive: it closes between this and a second later

    @property
    def shorter(self) -> float:
        return min(self.proxy_idle_timeout, self.pod_keepalive)

    def problems(self) -> list[str]:
        if self.pod_keepalive >= self.proxy_idle_timeout + CLOSE_ORDER_MARGIN_SECONDS:
            return []
        return [
            f"gunicorn keepalive {self.pod_keepalive:g} s is not longer than the ingress' upstream "
            f"keep-alive timeout {self.proxy_idle_timeout:g} s (+ {CLOSE_ORDER_MARGIN_SECONDS:g} s): the pod "
            "may close an idle connection the proxy is reusing, and a POST sent on it fails with 502"
        ]


def keep_alive(web: WebTier, controller: Mapping[str, object] | None = None) -> KeepAlive:
    """The timeouts of the rendered manifests (``controller``: an overlay of the controller's ConfigMap)."""
    return KeepAlive(
        proxy_idle_timeout=float(setting(web, "upstream-keepalive-timeout", controller)),
        pod_keepalive=server_settings(pod_environment(web))["keepalive"],
    )
