"""Label values that stay bounded whatever clients send (docs/ARCHITECTURE.md, "Labels stay bounded").

The tenant cap is shared by the workers of one server: the admitted slugs live in a file in the
multiprocess directory, wiped with the counters at server start; without one, in memory.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading

from django.conf import settings

from apps.ops.context import current_tenant_slug

logger = logging.getLogger(__name__)

STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
OTHER_TENANT = "other"
ADMITTED_TENANTS_FILE = "admitted-tenants.txt"
# The (method, route) of every request of a client that is not logged in (docs/METRICS.md, "Who
# creates series"): whatever such clients send, they create one series per status code.
ANONYMOUS = ("any", "anonymous")
STATUS_CLASSES = {status: f"{status // 100}xx" for status in range(100, 600)}


def method_label(method: str | None) -> str:
    return method if method in STANDARD_METHODS else "other"


def route_label(request: object) -> str:
    match = getattr(request, "resolver_match", None)
    return match.view_name if match is not None and match.view_name else "unmatched"


class TenantLabels:
    """Maps tenant slugs to label values, admitting at most ``METRICS_TENANT_LABEL_LIMIT`` slugs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget every admitted tenant (tests; a server start does this by wiping the directory)."""
        self._admitted: frozenset[str] = frozenset()
        self._full = False

    def label(self, slug: str | None) -> str:
        if not slug:
            return "none"
        if slug in self._admitted:  # the per-request path: one set lookup, no lock
            return slug
        if self._full:
            return OTHER_TENANT
        with self._lock:
            try:
                return self._admit(slug)
            except OSError:  # the shared file unusable: count the request, as `other`, not fail it
                logger.warning("tenant label cap file unusable in %s", settings.PROMETHEUS_MULTIPROC_DIR)
                return OTHER_TENANT

    def _admit(self, slug: str) -> str:
        limit = settings.METRICS_TENANT_LABEL_LIMIT
        directory = settings.PROMETHEUS_MULTIPROC_DIR
        if directory and os.path.isdir(directory):
            # Every worker's admitted slugs, appending ``slug`` if there is room.
            with open(os.path.join(directory, ADMITTED_TENANTS_FILE), "a+", encoding="utf-8") as shared:
                fcntl.flock(shared, fcntl.LOCK_EX)
                shared.seek(0)
                admitted = {line.strip() for line in shared if line.strip()}
                if slug not in admitted and len(admitted) < limit:
                    shared.write(slug + "\n")
                    shared.flush()
                    admitted.add(slug)
        else:
            admitted = self._admitted | {slug} if len(self._admitted) < limit else self._admitted
        self._admitted = frozenset(admitted)
        self._full = len(admitted) >= limit
        return slug if slug in admitted else OTHER_TENANT


tenant_labels = TenantLabels()


def current_tenant_label() -> str:
    return tenant_labels.label(current_tenant_slug())
