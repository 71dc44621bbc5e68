"""WSGI entry point for gunicorn: Django, with ``/live`` answered in front of it."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dotmac.settings")

django_application = get_wsgi_application()

from apps.ops.probes import with_wsgi_liveness  # noqa: E402  (after Django is set up)

application = with_wsgi_liveness(django_application)
