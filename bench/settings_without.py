"""The benchmark settings without some middleware: every entry of ``MIDDLEWARE`` whose dotted path
starts with one of the comma-separated prefixes in ``BENCH_WITHOUT_MIDDLEWARE`` is left out.

``apps.ops.`` is the "ops off" variant (every operations-layer middleware); a narrower prefix
(``apps.ops.metrics.``) takes away a single one.
"""

import os

from bench.settings import *  # noqa: F403
from bench.settings import MIDDLEWARE

_WITHOUT = tuple(
    prefix.strip() for prefix in os.environ.get("BENCH_WITHOUT_MIDDLEWARE", "").split(",") if prefix.strip()
)

MIDDLEWARE = [entry for entry in MIDDLEWARE if not entry.startswith(_WITHOUT)] if _WITHOUT else MIDDLEWARE
