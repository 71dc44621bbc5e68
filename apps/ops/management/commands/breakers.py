"""``manage.py breakers [list|reset NAME|reset-all]``: see and reset circuit breakers from a shell.

Resets are audited like those of the REST API and the admin, as ``cli:<os user>``.
"""

from __future__ import annotations

import getpass
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.ops import breakers, services
from apps.ops.breakers import BreakerStatus
from apps.ops.models import BreakerResetAudit


def _cli_actor() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no user name in a bare container
        user = "unknown"
    return f"cli:{user}"


class Command(BaseCommand):
    help = "List circuit breakers, reset one (reset NAME), or reset all (reset-all)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", nargs="?", default="list", choices=["list", "reset", "reset-all"])
        parser.add_argument("name", nargs="?", help="breaker to reset (with `reset`)")
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def handle(self, *args: Any, action: str, name: str | None, **options: Any) -> None:
        if action == "list":
            if name:
                raise CommandError("`list` takes no name")
            self._print(breakers.all_statuses(), as_json=options["json"])
        elif action == "reset":
            if not name:
                raise CommandError("usage: breakers reset NAME")
            try:
                status = services.breaker_reset(name=name, actor=_cli_actor(), via=BreakerResetAudit.Via.CLI)
            except services.UnknownBreaker as exc:
                raise CommandError(str(exc)) from None
            self._print([status], as_json=options["json"])
        else:
            if name:
                raise CommandError("`reset-all` takes no name")
            statuses = services.breaker_reset_all(actor=_cli_actor(), via=BreakerResetAudit.Via.CLI)
            self._print(statuses, as_json=options["json"])
            if not options["json"]:
                self.stdout.write(self.style.SUCCESS(f"reset {len(statuses)} circuit breakers"))

    def _print(self, statuses: list[BreakerStatus], *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps({"breakers": [status.as_dict() for status in statuses]}, indent=2))
            return
        if not statuses:
            self.stdout.write("no circuit breaker configured or used yet")
            return
        header = f"{'NAME':<24} {'STATE':<10} {'FAILURES':>9} {'RESET AFTER':>12} {'SHARED':<6} OPENED AT"
        self.stdout.write(header)
        for status in statuses:
            opened = status.opened_at.isoformat() if status.opened_at else "-"
            self.stdout.write(
                f"{status.name:<24} {status.state:<10} {f'{status.failure_count}/{status.fail_max}':>9} "
                f"{f'{status.reset_timeout:g} s':>12} {'yes' if status.shared else 'no':<6} {opened}"
            )
        if not all(status.shared for status in statuses):
            self.stdout.write(
                "(shared: no — state is this process's own: its store, Redis or the database, unreachable)"
            )
