"""Who sees the details of ``/ready`` and ``/health`` (``HEALTH_SHOW_DETAILS``: ``never``, ``always``
or ``when_authorized``); docs/ARCHITECTURE.md, "Probes"."""

from __future__ import annotations

import logging
from importlib import import_module

from django.conf import settings
from django.contrib.auth import get_user
from django.http import HttpRequest

from apps.ops.bearer import token_matches

logger = logging.getLogger(__name__)


def details_allowed(request: HttpRequest) -> bool:
    """Whether this caller may see messages, timings and components: with ``when_authorized``, a
    holder of ``OPS_API_TOKEN`` or an active staff user."""
    policy = settings.HEALTH_SHOW_DETAILS
    if policy != "when_authorized":
        return policy == "always"
    authorization = request.META.get("HTTP_AUTHORIZATION", "")
    return token_matches(authorization, settings.OPS_API_TOKEN) or _staff_session(request)


def _staff_session(request: HttpRequest) -> bool:
    """Is the caller a logged-in, active staff user?

    The probes are answered before SessionMiddleware, so the session is loaded here, and only when
    its cookie came: probes from the kubelet carry none and stay free of database work.
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
