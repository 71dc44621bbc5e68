"""What ``/ready`` and ``/health`` answer a request: the report, with details for those who may see them.

Details (messages, timings, components) follow ``HEALTH_SHOW_DETAILS``: ``never``, ``always``, or
``when_authorized``: ``Authorization: Bearer <OPS_API_TOKEN>`` or the session of an active staff
user. Anonymous callers get statuses only.
"""

from __future__ import annotations

import logging
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user
from django.http import HttpRequest

from apps.ops.bearer import token_matches

from . import full_report, readiness_report
from .report import service_document

logger = logging.getLogger(__name__)


def details_allowed(request: HttpRequest) -> bool:
    """Whether this caller may see messages, timings and components (``HEALTH_SHOW_DETAILS``)."""
    policy = settings.HEALTH_SHOW_DETAILS
    if policy != "when_authorized":
        return policy == "always"
    authorization = request.META.get("HTTP_AUTHORIZATION", "")
    return token_matches(authorization, settings.OPS_API_TOKEN) or _staff_session(request)


def _staff_session(request: HttpRequest) -> bool:
    """Is the caller a logged-in, active staff user? Loads the session only when its cookie came.

    The probes are answered before SessionMiddleware, so the session is loaded here, and only then:
    probes from the kubelet carry no cookie and stay free of database work.
    """
    session_key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if not session_key:
        return False
    try:
        request.session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
        user = get_user(request)
        return bool(user.is_active and user.is_staff)
    except Exception:  # a session store that is down means "not authorized", never a 500
        logger.warning("could not read the session of a probe request", exc_info=True)
        return False


def ready_answer(request: HttpRequest) -> tuple[int, dict[str, Any]]:
    """The status and document of ``/ready``."""
    report = readiness_report()
    return report.http_status, report.as_health_json(details=details_allowed(request))


def health_answer(request: HttpRequest) -> tuple[int, dict[str, Any]]:
    """The status and document of ``/health``."""
    report = full_report()
    return report.http_status, service_document(report, details=details_allowed(request))
