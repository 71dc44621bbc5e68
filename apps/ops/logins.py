"""Logins: the cap on password checks running at once, and the log line of each refused login
(docs/ARCHITECTURE.md, "Logins"). django-axes counts failures and locks out (``axes_internals``)."""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from .client_address import client_address

logger = logging.getLogger("apps.ops.logins")

# A username is user-typed text of any length; the user model holds at most 150 characters.
_USERNAME_LOGGED_CHARS = 150


def log_login(request: HttpRequest, username: str | None, outcome: str, detail: str) -> None:
    """One WARNING line for a login that did not succeed (``outcome``: failed, throttled, refused)."""
    username = (username or "")[:_USERNAME_LOGGED_CHARS]
    address = client_address(request)
    logger.warning(
        "login %s for %r from %s: %s",
        outcome,
        username,
        address,
        detail,
        extra={"login": outcome, "username": username, "client_address": address},
    )


@functools.cache
def _password_checks(size: int) -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(size)


class CappedModelBackend(ModelBackend):
    """Django's ModelBackend, at most ``LOGIN_HASHING_CONCURRENCY`` password checks at once per process.

    A check costs ~0.2 s of CPU (PBKDF2), an unknown username as much (Django hashes anyway, so timing
    does not tell). A login that gets no slot within ``LOGIN_HASHING_WAIT_SECONDS`` is refused with a
    form error; it is not counted as a failure (its password was never checked).
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ):
        slots = _password_checks(settings.LOGIN_HASHING_CONCURRENCY)
        if not slots.acquire(timeout=settings.LOGIN_HASHING_WAIT_SECONDS):
            if request is not None:
                log_login(request, username, "refused", "every password check slot of this process is busy")
            # Raised through authenticate() and the form's clean(): the form shows it.
            raise ValidationError(
                "The server is busy checking other logins. Please try again in a few seconds.", code="busy"
            )
        try:
            return super().authenticate(request, username=username, password=password, **kwargs)
        finally:
            slots.release()
