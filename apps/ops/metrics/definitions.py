"""Every application metric, defined once (docs/ARCHITECTURE.md, "Metrics"). Names are what dashboards
and alert rules use; every gauge declares its ``multiprocess_mode``."""

import logging
import os

from prometheus_client import Counter, Gauge, Histogram

from .prometheus_internals import keep_values_in_memory

logger = logging.getLogger(__name__)


def _keep_values_in_memory_without_a_usable_directory() -> None:
    """Record in memory when ``PROMETHEUS_MULTIPROC_DIR`` names a directory this process can neither
    find nor create (``manage.py migrate`` in a Job sharing the pods' ConfigMap, on a read-only root
    filesystem), instead of failing on the first metric. Read from the environment, at import, because
    that is when and where prometheus_client itself decides."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if not directory:
        return
    try:
        os.makedirs(directory, exist_ok=True)
        usable = os.access(directory, os.W_OK | os.X_OK)
    except OSError:
        usable = False
    if not usable:
        keep_values_in_memory()
        logger.warning(
            "PROMETHEUS_MULTIPROC_DIR %s is not a writable directory: metrics stay in memory", directory
        )


_keep_values_in_memory_without_a_usable_directory()

# One bucket is exactly 1 s: the latency alerts ask for p95 > 1 s. Nine buckets (+Inf) keep a
# histogram at twelve series. The label sets answer per-route and per-tenant questions separately:
# no tenant x route product (docs/METRICS.md, "Label sets").
REQUEST_DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

HTTP_REQUESTS = Counter(
    "http_requests",
    "HTTP requests served, by method, matched route and status.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds", "Time to produce the response, by method and matched route.",
    ["method", "route"], buckets=REQUEST_DURATION_BUCKETS,
)  # fmt: skip
HTTP_TENANT_REQUESTS = Counter(
    "http_tenant_requests", "HTTP requests of members of a tenant, by status class (2xx, 5xx, ...).",
    ["tenant", "status_class"],
)  # fmt: skip
HTTP_TENANT_REQUEST_DURATION = Histogram(
    "http_tenant_request_duration_seconds", "Time to produce the response to a member of a tenant.",
    ["tenant"], buckets=REQUEST_DURATION_BUCKETS,
)  # fmt: skip
CACHE_OPERATIONS = Counter("cache_operations", "Cache operations by result.", ["operation", "result"])
# Each worker counts its own; "livesum" adds the live workers' values and drops a dead worker's.
DATABASE_CONNECTIONS_ACTIVE = Gauge(
    "database_connections_active", "Database connections in use (checked out of the pool, or open).",
    ["alias"], multiprocess_mode="livesum",
)  # fmt: skip
CIRCUIT_BREAKER_CALLS = Counter(
    "circuit_breaker_calls", "Calls through a circuit breaker, by outcome.", ["breaker", "outcome"]
)
CIRCUIT_BREAKER_TRANSITIONS = Counter(
    "circuit_breaker_transitions", "Circuit breaker state changes, by new state.", ["breaker", "to"]
)
HEALTH_CHECK_STATUS = Gauge(
    "health_check_status", "Last result of a health check: 1 pass, 0.5 warn, 0 fail.", ["check"],
    multiprocess_mode="mostrecent",
)  # fmt: skip
HEALTH_CHECK_DURATION = Gauge(
    "health_check_duration_seconds", "Duration of the last run of a health check.", ["check"],
    multiprocess_mode="mostrecent",
)  # fmt: skip
SUBSCRIBERS_CREATED = Counter("dotmac_subscribers_created", "Subscribers created, by tenant.", ["tenant"])
PROVISIONING_REQUESTS = Counter(
    "dotmac_provisioning_requests", "Provisioning requests, by tenant and outcome.", ["tenant", "outcome"]
)
