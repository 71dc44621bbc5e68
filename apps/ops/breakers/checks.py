"""System check: ``settings.CIRCUIT_BREAKERS`` is valid (``manage.py check`` fails fast on a typo)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register

from .config import settings_errors


@register("ops")
def check_circuit_breaker_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    return [Error(message, id="ops.E001") for message in settings_errors(settings.CIRCUIT_BREAKERS)]
