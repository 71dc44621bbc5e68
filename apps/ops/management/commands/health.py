"""``manage.py health [--ready|--live]``: the probe's document on stdout, exit 0 (pass/warn) or 1 (fail).

Whoever can run this can read the environment, so it shows details unless ``HEALTH_SHOW_DETAILS=never``.
"""

from __future__ import annotations

import json
import logging
import sys

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.ops import health


class Command(BaseCommand):
    help = (
        "Print the health report (like GET /health; --ready, --live for those probes). "
        "Exit 0 when it passes or warns, 1 when it fails."
    )

    def add_arguments(self, parser) -> None:
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--ready", action="store_true", help="the readiness checks, like GET /ready")
        which.add_argument("--live", action="store_true", help="liveness only, like GET /live")

    def handle(self, *args, ready: bool = False, live: bool = False, **options) -> None:
        _send_logs_to_stderr()  # stdout carries the report alone, so it can be parsed
        if live:
            document = {"status": health.Status.PASS.value}
        else:
            _status, document = health.answer(ready=ready, details=settings.HEALTH_SHOW_DETAILS != "never")
        self.stdout.write(json.dumps(document, indent=2, ensure_ascii=False))
        if document["status"] == health.Status.FAIL:
            raise SystemExit(1)


def _send_logs_to_stderr() -> None:
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
                handler.setStream(sys.stderr)
