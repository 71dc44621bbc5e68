"""The project's settings (whatever ``DJANGO_ENV`` says) with the benchmark URLconf added.

Everything else, the middleware stack included, is exactly what the project serves.
"""

import os

from dotmac.settings import *  # noqa: F403
from dotmac.settings import MIDDLEWARE

ROOT_URLCONF = "bench.urls"
# Directory where the slow view leaves one marker file per started request (empty: none).
BENCH_INFLIGHT_DIR = os.environ.get("BENCH_INFLIGHT_DIR", "")

# Middleware the operations layer adds (request ids, probes, metrics, drain guard), reported with
# the results: what the "ops off" variant (settings_without, prefix "apps.ops.") takes away.
# Tenant resolution is not among them: the business views need it.
OPS_MIDDLEWARE = [entry for entry in MIDDLEWARE if entry.startswith("apps.ops.")]
METRICS_MIDDLEWARE = [entry for entry in OPS_MIDDLEWARE if entry.startswith("apps.ops.metrics.")]
