"""WSGI entry point for gunicorn: Django, with ``/live`` answered in front of it."""

import os

from django.core.wsgi import get_wsgi_application

from apps.ops.probes import with_wsgi_liveness

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dotmac.settings")

application = with_wsgi_liveness(get_wsgi_application())
