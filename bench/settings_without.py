"""The benchmark settings without the middleware ``BENCH_WITHOUT_MIDDLEWARE`` names (see
``bench/settings.py``): the second server of the two-server ratios."""

from bench.settings import *  # noqa: F403
from bench.settings import MIDDLEWARE_WITHOUT

MIDDLEWARE = MIDDLEWARE_WITHOUT
