"""Settings of the site the graceful-shutdown tests serve: the project's, with ``drain_site.urls``.

It also registers one cleanup task through the public API; the line it logs shows that
application tasks run in every worker on exit.
"""

import logging
import os

from apps.ops.shutdown import register_cleanup
from dotmac.settings import *  # noqa: F403

ROOT_URLCONF = "tests.ops.drain_site.urls"
# Users are created by the test process, which hashes passwords with the fast test hasher.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _announce_cleanup() -> None:
    logging.getLogger("tests.drain_site").info("drain-site cleanup ran", extra={"pid": os.getpid()})


register_cleanup("drain-site", _announce_cleanup, timeout=1.0)
