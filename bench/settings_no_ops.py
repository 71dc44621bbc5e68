"""The benchmark settings with every operations-layer middleware removed (the "ops off" variant)."""

from bench.settings import *  # noqa: F403
from bench.settings import MIDDLEWARE, OPS_MIDDLEWARE

MIDDLEWARE = [entry for entry in MIDDLEWARE if entry not in OPS_MIDDLEWARE]
