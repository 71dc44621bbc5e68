"""Production hardening, layered on ``base`` when ``DJANGO_ENV=production``.

``python manage.py check --deploy --fail-level WARNING`` passes with these.
"""

from .env import env_bool, env_int

DEBUG = False

# TLS terminates at the ingress, which sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
# Probes and scrapes come over plain HTTP from the kubelet and Prometheus inside the cluster; they
# are answered by the first two middlewares, before SecurityMiddleware could redirect them.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"
