"""gunicorn settings for DotMac Platform, from the environment, and the server hooks.

Every setting is documented in the README's configuration table. The hooks are those of
``apps/ops/gunicorn_hooks.py``: on SIGTERM the server drains gracefully (``apps/ops/shutdown/``),
with ``PROBE_PORT`` each worker answers the probes on a port of its own (``apps/ops/probe_listener.py``).
The master reads this file and must not load the application before it forks: nothing imported here
imports Django.
"""

from __future__ import annotations

import os
import tempfile

from apps.ops.gunicorn_hooks import ServerHooks, probe_address


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


_production = _env("DJANGO_ENV", "development") == "production"
_port = int(_env("PORT", "8000"))

# --- Server ---------------------------------------------------------------------------------------
# 0.0.0.0 in a container (the kubelet and the Service reach the pod IP); loopback on a workstation.
_host = "0.0.0.0" if _production else "127.0.0.1"
bind = [_env("GUNICORN_BIND", f"{_host}:{_port}")]
wsgi_app = "dotmac.wsgi:application"
worker_class = "gthread"
workers = int(_env("WEB_CONCURRENCY", "2"))
threads = int(_env("GUNICORN_THREADS", "4"))
timeout = int(_env("GUNICORN_TIMEOUT", "60"))
# Time the workers get to finish requests in flight once they are told to stop.
graceful_timeout = int(_env("GUNICORN_GRACEFUL_TIMEOUT", "30"))
# Behind a proxy, set it longer than the proxy's upstream idle timeout, so that the proxy closes an
# idle connection first and never sends on one gunicorn is closing (the manifests: 75 s, over
# ingress-nginx's 60 s). 5 s serves clients that talk to gunicorn directly (make run).
keepalive = int(_env("GUNICORN_KEEPALIVE", "5"))
max_requests = int(_env("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = int(_env("GUNICORN_MAX_REQUESTS_JITTER", "200"))
forwarded_allow_ips = _env("FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn >= 25 opens a control socket under $HOME by default; nothing here uses it.
control_socket_disable = True

# How long /ready answers 503 while everything else is still served, before the listeners close.
DRAIN_DELAY_SECONDS = float(_env("DRAIN_DELAY_SECONDS", "5" if _production else "0"))
# /live, /ready and /health on a port of their own, apart from the request threads, which clients
# sending their headers slowly can all hold: the kubelet would then restart a pod that is only busy.
PROBE_ADDRESS = probe_address(bind[0], _env("PROBE_PORT", ""), default_host=_host)

# --- Writable paths: only a temporary directory is writable in the container -------------------------
# One directory per port, so two servers on one host never share (or wipe) each other's files.
RUNTIME_DIR = os.environ.setdefault(
    "GUNICORN_RUNTIME_DIR", os.path.join(tempfile.gettempdir(), f"dotmac-gunicorn-{_port}")
)
# Set before the workers fork: prometheus_client reads it when it is first imported.
PROMETHEUS_MULTIPROC_DIR = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", os.path.join(RUNTIME_DIR, "prometheus")
)
# Worker heartbeat files: a tmpfs when there is one (the root filesystem may be read-only).
worker_tmp_dir = _env(
    "GUNICORN_WORKER_TMP_DIR", "/dev/shm" if os.access("/dev/shm", os.W_OK | os.X_OK) else RUNTIME_DIR
)

# --- Logging: access lines on stdout in the project's LOG_FORMAT, gunicorn's own messages on stderr ------
logger_class = "apps.ops.shutdown.gunicorn_internals.AccessLogger"
accesslog = "-"
errorlog = "-"
loglevel = _env("LOG_LEVEL", "info").lower()

# --- Server hooks -------------------------------------------------------------------------------------
_hooks = ServerHooks(
    runtime_dir=RUNTIME_DIR,
    metrics_dir=PROMETHEUS_MULTIPROC_DIR,
    drain_delay=DRAIN_DELAY_SECONDS,
    probe_address=PROBE_ADDRESS,
)
on_starting = _hooks.on_starting
on_reload = _hooks.on_reload
child_exit = _hooks.child_exit
on_exit = _hooks.on_exit
post_worker_init = _hooks.post_worker_init
worker_int = _hooks.worker_int
worker_abort = _hooks.worker_abort
worker_exit = _hooks.worker_exit
