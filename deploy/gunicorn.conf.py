"""gunicorn settings for DotMac Platform, read from the environment with documented defaults.

Imports no Django at module level: the master must not load the app before forking.
"""

import os

_production = os.environ.get("DJANGO_ENV", "development") == "production"
_port = int(os.environ.get("PORT", "8000"))

# 0.0.0.0 in a container (the kubelet and the Service reach the pod IP); loopback on a workstation.
bind = [os.environ.get("GUNICORN_BIND") or f"{'0.0.0.0' if _production else '127.0.0.1'}:{_port}"]
wsgi_app = "dotmac.wsgi:application"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
# Below the idle timeouts of common load balancers (60 s and up), so the proxy closes first.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "200"))
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# The container root filesystem is read-only; heartbeat files go to a tmpfs path.
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR") or (
    "/dev/shm" if os.path.isdir("/dev/shm") else None
)
# gunicorn >= 25 opens a control socket under $HOME by default; nothing here uses it.
control_socket_disable = True

accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
