"""The project's settings (whatever ``DJANGO_ENV`` says) with the benchmark URLconf added.

Everything else, the middleware stack included, is exactly what the project serves. The stack
*without* some middleware is computed here too (``MIDDLEWARE_WITHOUT``), for the variants that
compare against it: ``bench/settings_without.py`` and ``bench/interleaved.py``.
"""

import os

from dotmac.settings import *  # noqa: F403
from dotmac.settings import MIDDLEWARE

ROOT_URLCONF = "bench.urls"

# The peer of the request metrics middleware: with BENCH_METRICS_PEER=django-prometheus, its two
# default middleware (first and last, as its documentation places them) replace the project's.
if os.environ.get("BENCH_METRICS_PEER") == "django-prometheus":
    MIDDLEWARE = [
        "django_prometheus.middleware.PrometheusBeforeMiddleware",
        *[entry for entry in MIDDLEWARE if not entry.startswith("apps.ops.metrics.")],
        "django_prometheus.middleware.PrometheusAfterMiddleware",
    ]
# Directory where the slow view leaves one marker file per started request (empty: none).
BENCH_INFLIGHT_DIR = os.environ.get("BENCH_INFLIGHT_DIR", "")

# Middleware the operations layer adds (request ids, probes, metrics, drain guard), reported with
# the results: what the "ops off" variant (settings_without, prefix "apps.ops.") takes away.
# Tenant resolution is not among them: the business views need it.
OPS_MIDDLEWARE = [entry for entry in MIDDLEWARE if entry.startswith("apps.ops.")]
METRICS_MIDDLEWARE = [entry for entry in OPS_MIDDLEWARE if entry.startswith("apps.ops.metrics.")]

# Comma-separated dotted-path prefixes of the middleware a "without" variant leaves out:
# "apps.ops." for the whole operations layer, "apps.ops.metrics." for the metrics middleware alone,
# "django_prometheus." for the peer's.
BENCH_WITHOUT_MIDDLEWARE = tuple(
    prefix.strip() for prefix in os.environ.get("BENCH_WITHOUT_MIDDLEWARE", "").split(",") if prefix.strip()
)
MIDDLEWARE_WITHOUT = [entry for entry in MIDDLEWARE if not entry.startswith(BENCH_WITHOUT_MIDDLEWARE)]
