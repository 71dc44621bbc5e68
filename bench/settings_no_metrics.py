"""The benchmark settings with only the request-metrics middleware removed."""

from bench.settings import *  # noqa: F403
from bench.settings import METRICS_MIDDLEWARE, MIDDLEWARE

MIDDLEWARE = [entry for entry in MIDDLEWARE if entry not in METRICS_MIDDLEWARE]
