"""The client's address: the one definition used by login throttling, the login log lines and the
access lines."""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import ip_address

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    """The address of the client that sent ``request`` (see :func:`address_in`)."""
    return address_in(request.META)


def address_in(meta: Mapping[str, str]) -> str:
    """``REMOTE_ADDR`` of a WSGI environ, or, behind ``TRUSTED_PROXY_COUNT`` proxies that each append
    the address they saw to ``X-Forwarded-For``, the entry the outermost of them appended.

    Entries left of it were sent by the client and prove nothing. A header with fewer entries than
    trusted proxies, or a malformed entry, did not come through them: the peer's address is used.
    """
    peer = meta.get("REMOTE_ADDR", "")
    count = settings.TRUSTED_PROXY_COUNT
    if count <= 0:
        return peer
    hops = meta.get("HTTP_X_FORWARDED_FOR", "").split(",")
    if len(hops) < count:
        return peer
    try:
        return str(ip_address(hops[-count].strip()))
    except ValueError:
        return peer
