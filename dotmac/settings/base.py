"""Every setting of the project, read once from the environment with safe defaults.

``DJANGO_ENV=production`` layers ``production.py`` on top (see ``__init__.py``). Application code
reads ``django.conf.settings`` at call time; nothing else reads the environment.
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from .env import (
    cache_from_url,
    database_from_url,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_json,
    env_list,
    env_str,
    writable_data_dir,
)

BASE_DIR = Path(__file__).resolve().parent.parent.parent

DJANGO_ENV = env_choice("DJANGO_ENV", ("development", "production"), "development")
IS_PRODUCTION = DJANGO_ENV == "production"

DEBUG = env_bool("DJANGO_DEBUG", not IS_PRODUCTION)

_DEV_SECRET_KEY = "dev-only-insecure-key-never-use-in-production-0123456789abcdefghijklmnop"
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if IS_PRODUCTION:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is required when DJANGO_ENV=production (there is no fallback)."
        )
    SECRET_KEY = _DEV_SECRET_KEY

_DEFAULT_HOSTS = [] if IS_PRODUCTION else ["localhost", "127.0.0.1", "[::1]"]
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", _DEFAULT_HOSTS)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

APP_VERSION = env_str("APP_VERSION", "dev")
SERVICE_NAME = "dotmac-platform"

# Writable directory for the embedded SQLite database and other local state.
DATA_DIR = writable_data_dir(BASE_DIR / "var")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "axes",
    "apps.ops",
    "apps.tenants",
    "apps.subscribers",
]

# Order matters. Outermost first: probes (answered before host validation, sessions and the SSL
# redirect), then request metrics (so every response below is counted, 503s of the drain included),
# then the drain guard, then Django's stack. Tenant resolution runs after authentication.
MIDDLEWARE = [
    "apps.ops.probes.ProbeMiddleware",
    "apps.ops.metrics.middleware.RequestMetricsMiddleware",
    "apps.ops.shutdown.DrainMiddleware",
    "apps.ops.logging.RequestIdMiddleware",
    "apps.ops.request_guard.RejectNulCharactersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "apps.tenants.middleware.TenantMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Turns a login refused for too many failures into the 429 lockout page (AXES_LOCKOUT_TEMPLATE).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "dotmac.urls"
WSGI_APPLICATION = "dotmac.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# PostgreSQL through psycopg 3; Django's native pool by default (DATABASE_POOL=false switches to
# persistent per-thread connections). Without DATABASE_URL: an embedded SQLite file.
DATABASE_URL = env_str("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'dotmac.sqlite3'}"
DATABASE_POOL = env_bool("DATABASE_POOL", True)
DATABASE_POOL_MAX_SIZE = env_int("DATABASE_POOL_MAX_SIZE", 8)
DATABASE_CONNECT_TIMEOUT = env_int("DATABASE_CONNECT_TIMEOUT", 3)
DATABASES = {
    "default": database_from_url(
        DATABASE_URL,
        pool=DATABASE_POOL,
        pool_max_size=DATABASE_POOL_MAX_SIZE,
        connect_timeout=DATABASE_CONNECT_TIMEOUT,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache / shared state -------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
# Circuit breakers' shared state (apps.ops.breakers): each Redis command waits at most this long.
REDIS_SOCKET_TIMEOUT = env_float("REDIS_SOCKET_TIMEOUT", 0.5)
# The cache only saves work, so it never waits long: a Redis that has not answered within this
# (connect or read) counts as unreachable and pages run without the cache (apps.ops.cache). It
# bounds what a frozen Redis costs the requests in flight when it freezes. Redis answers in well
# under a millisecond; a slower answer only bypasses the cache for CACHE_RETRY_SECONDS.
CACHE_SOCKET_TIMEOUT = env_float("CACHE_SOCKET_TIMEOUT", 0.02)
# While Redis is unreachable each process pings it this often and uses it again at the first answer.
CACHE_RETRY_SECONDS = env_float("CACHE_RETRY_SECONDS", 1.0)
CACHES = cache_from_url(REDIS_URL, socket_timeout=CACHE_SOCKET_TIMEOUT)

SESSION_ENGINE = "django.contrib.sessions.backends.db"

# --- Auth, i18n, static ---------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "subscribers:list"
LOGOUT_REDIRECT_URL = "login"

# --- Content-Security-Policy (django-csp) ---------------------------------------------------
# Everything from this site only, and no inline script or style anywhere (the admin needs none): an
# injected tag or attribute does not run. No plugins, no <base>, no framing, forms post here only.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}

# --- Logins (docs/ARCHITECTURE.md, "Logins") ------------------------------------------------
# django-axes refuses a login before its password is checked once an account, or a client address,
# has AXES_FAILURE_LIMIT failed logins within AXES_COOLOFF_TIME of the last one: 429 and a page
# saying so. Counters live in the default cache (Redis, shared by every pod); a successful login
# resets them. While Redis is unreachable nothing is counted (fail-open); the hashing cap still holds.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "apps.ops.logins.CappedModelBackend"]
AXES_HANDLER = "apps.ops.axes_internals.LoginAttemptsHandler"
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
# A success resets the account's failures, not the address's (apps/ops/axes_internals.py).
AXES_RESET_ON_SUCCESS = False
# A refused attempt neither counts nor extends the lockout: the page's "15 minutes" holds.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_CLIENT_IP_CALLABLE = "apps.ops.client_address.client_address"
AXES_ENABLE_ADMIN = False  # attempts live in the cache: axes' tables stay empty
# Proxies in front of the app that each append the address they saw to X-Forwarded-For (the
# ingress: 1). 0: the client is the connection's peer, REMOTE_ADDR, and the header is ignored.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
# Password checks (~0.2 s of CPU each) running at once per process, so logins cannot starve pages;
# a login that gets no slot within LOGIN_HASHING_WAIT_SECONDS is refused with a message.
LOGIN_HASHING_CONCURRENCY = env_int("LOGIN_HASHING_CONCURRENCY", 2)
if LOGIN_HASHING_CONCURRENCY < 1:
    raise ImproperlyConfigured("LOGIN_HASHING_CONCURRENCY must be at least 1")
LOGIN_HASHING_WAIT_SECONDS = 1.0

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT") or BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if IS_PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Development serves static files from the finders without collectstatic; production serves the
# files collected into STATIC_ROOT at image build time.
WHITENOISE_USE_FINDERS = not IS_PRODUCTION
WHITENOISE_AUTOREFRESH = not IS_PRODUCTION

# --- Tenants --------------------------------------------------------------------------------
TENANT_BASE_DOMAIN = env_str("TENANT_BASE_DOMAIN").lower().strip(".")
TENANT_HEADER_ENABLED = env_bool("TENANT_HEADER_ENABLED", False)
TENANT_HEADER = "HTTP_X_TENANT_ID"
# Per-process cache of tenant resolution; changes made in another process show within this time.
TENANT_CACHE_SECONDS = env_int("TENANT_CACHE_SECONDS", 30)

# --- Ops: tokens, probes, breakers, metrics, shutdown ---------------------------------------
OPS_API_TOKEN = env_str("OPS_API_TOKEN")
# How ops code learns the current tenant without importing a business app.
OPS_CURRENT_TENANT_FUNCTION = "apps.tenants.context.current_tenant_slug"
OPS_REQUEST_IDENTITY_FUNCTION = "apps.tenants.context.request_identity"

# --- Probes and health checks ---------------------------------------------------------------
# /live, /ready, /health (apps.ops.probes). Who sees check messages and timings: never,
# when_authorized (bearer OPS_API_TOKEN or a staff session) or always.
HEALTH_SHOW_DETAILS = env_choice(
    "HEALTH_SHOW_DETAILS", ("never", "when_authorized", "always"), "when_authorized"
)
# Checks run concurrently; the answer comes within this many seconds (keep it below the probes'
# timeoutSeconds). Results are reused per process for HEALTH_CACHE_TTL seconds.
HEALTH_CHECK_DEADLINE = env_float("HEALTH_CHECK_DEADLINE", 1.0)
HEALTH_CACHE_TTL = env_float("HEALTH_CACHE_TTL", 2.0)
if HEALTH_CHECK_DEADLINE <= 0 or HEALTH_CACHE_TTL < 0:
    raise ImproperlyConfigured("HEALTH_CHECK_DEADLINE must be > 0 and HEALTH_CACHE_TTL >= 0")
HEALTH_DISK_PATHS = env_list("HEALTH_DISK_PATHS", [str(DATA_DIR), tempfile.gettempdir()])
HEALTH_DISK_WARN_FREE_PERCENT = env_float("HEALTH_DISK_WARN_FREE_PERCENT", 10.0)
HEALTH_MEMORY_WARN_PERCENT = env_float("HEALTH_MEMORY_WARN_PERCENT", 90.0)
# Every check, in report order; /health runs them all, /ready those in HEALTH_READY_CHECKS.
# Per check: "class", optional "critical" (a critical failure makes the answer 503), "timeout"
# (seconds, within the deadline), "enabled", and the class's own options (see apps.ops.health.checks).
HEALTH_CHECKS = {
    "shutdown": {"class": "apps.ops.health.checks.ShutdownCheck"},
    "database": {"class": "apps.ops.health.checks.DatabaseCheck"},
    "cache": {"class": "apps.ops.health.checks.CacheCheck"},
    "migrations": {"class": "apps.ops.health.checks.MigrationsCheck"},
    "static_files": {"class": "apps.ops.health.checks.StaticFilesCheck"},
    # Each class declares whether it is critical: "shutdown", "migrations" and "static_files" are.
    "circuit_breakers": {"class": "apps.ops.health.checks.CircuitBreakersCheck"},
    "disk": {"class": "apps.ops.health.checks.DiskCheck"},
    "memory": {"class": "apps.ops.health.checks.MemoryCheck"},
}
HEALTH_READY_CHECKS = list(HEALTH_CHECKS)

# --- Metrics --------------------------------------------------------------------------------
# /metrics: when a token is set, scrapes need "Authorization: Bearer <token>". In production
# without a token it answers 401 to everyone unless the endpoint is deliberately public.
METRICS_BEARER_TOKEN = env_str("METRICS_BEARER_TOKEN")
METRICS_PUBLIC = env_bool("METRICS_PUBLIC", False)
# Distinct tenant label values per server; tenants beyond it are counted as "other".
METRICS_TENANT_LABEL_LIMIT = env_int("METRICS_TENANT_LABEL_LIMIT", 1000)
# prometheus_client's multiprocess directory (gunicorn sets it before forking); empty: one process.
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR")

# --- Circuit breakers and outbound calls ----------------------------------------------------
# Per-breaker overrides of the defaults (fail_max 5, reset_timeout 60 s, success_threshold 3,
# request_timeout 30 s), as JSON: CIRCUIT_BREAKERS='{"provisioning": {"fail_max": 3}}'. Staff can
# override further in the admin; every process picks admin changes up within the refresh interval.
CIRCUIT_BREAKERS = env_json("CIRCUIT_BREAKERS", {})
CIRCUIT_BREAKER_CONFIG_REFRESH_SECONDS = env_float("CIRCUIT_BREAKER_CONFIG_REFRESH_SECONDS", 5.0)
# Connect timeout of every outbound HTTP call (the whole call is bounded by its breaker's request_timeout).
OUTBOUND_HTTP_CONNECT_TIMEOUT = env_float("OUTBOUND_HTTP_CONNECT_TIMEOUT", 3.0)
# The network provisioning API that activates subscribers (POST {url}/subscribers); empty: not configured.
PROVISIONING_API_URL = env_str("PROVISIONING_API_URL").rstrip("/")
PROVISIONING_API_TOKEN = env_str("PROVISIONING_API_TOKEN")
# The integration's breaker is declared once configured, so it is listed, exported (closed) and
# resettable before its first call.
PROVISIONING_BREAKER = "provisioning"
if PROVISIONING_API_URL and isinstance(CIRCUIT_BREAKERS, dict):
    CIRCUIT_BREAKERS.setdefault(PROVISIONING_BREAKER, {})

# --- Logging --------------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOG_FORMAT = env_choice("LOG_FORMAT", ("json", "text"), "json" if IS_PRODUCTION else "text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_context": {"()": "apps.ops.logging.RequestContextFilter"},
        "one_line_warning": {"()": "apps.ops.logging.OneLineWarning"},
    },
    "formatters": {
        "json": {"()": "apps.ops.logging.JsonFormatter"},
        "text": {
            "()": "apps.ops.logging.TextFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(tenant)s] %(message)s",
        },
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": LOG_FORMAT,
            "filters": ["request_context"],
        }
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["stdout"], "level": LOG_LEVEL, "propagate": False},
        # gunicorn's access lines (apps/ops/shutdown/gunicorn_internals.py), in LOG_FORMAT as every line.
        "gunicorn.access": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        # apps.ops.logins writes one line per failed or throttled login; axes' own lines repeat them.
        "axes": {"level": "ERROR"},
        # Host-header errors from scanners are not worth an ERROR line with a traceback each.
        "django.security.DisallowedHost": {
            "handlers": ["stdout"],
            "level": "WARNING",
            "filters": ["one_line_warning"],
            "propagate": False,
        },
    },
}
