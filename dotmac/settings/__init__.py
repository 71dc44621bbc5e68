"""Settings package: ``base`` always, ``production`` on top when ``DJANGO_ENV=production``."""

from .base import *  # noqa: F403
from .base import IS_PRODUCTION

if IS_PRODUCTION:
    from .production import *  # noqa: F403
