"""Every application metric, defined once. Names are what dashboards and alert rules use.

Multiprocess-safe under gunicorn: counters and histograms are summed over workers by
prometheus_client's multiprocess collector; every gauge declares its ``multiprocess_mode``.
"""

from prometheus_client import Counter, Gauge, Histogram

# One bucket is exactly 1 s: the HighLatency alert asks for p95 > 1 s.
REQUEST_DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

HTTP_REQUESTS = Counter(
    "http_requests", "HTTP requests served, by matched route and resolved tenant.",
    ["method", "route", "status", "tenant"],
)  # fmt: skip
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds", "Time to produce the response.",
    ["method", "route", "tenant"], buckets=REQUEST_DURATION_BUCKETS,
)  # fmt: skip
CACHE_OPERATIONS = Counter("cache_operations", "Cache operations by result.", ["operation", "result"])
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
