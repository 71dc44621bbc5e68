"""Breaker state shared without Redis: one row per breaker (model ``ops.BreakerState``) in the default
database, which every worker of a server sees (and every pod, on one PostgreSQL).

Every query runs on one thread of this process with a connection of its own: never inside the
transaction of the request making the call (a rollback would forget its failures, and a row lock
would be held until that request ends), and a caller waits for it at most ``WAIT_SECONDS``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from django.apps import apps
from django.db import Error as DatabaseError
from django.db import connection
from django.db.models import F, QuerySet

from .status import NEVER_USED, StoredState
from .storage import SharedLink, SharedStateUnavailable, SharedStorage

T = TypeVar("T")

# Long enough for a write behind another writer on SQLite, short against a 30 s upstream call.
WAIT_SECONDS = 0.5
SWAP_ATTEMPTS = 5
# A breaker's columns, in the order of StoredState, with the values of a breaker never used.
_NEVER_USED = dict(zip(("state", "failure_count", "success_count", "opened_at"), NEVER_USED, strict=True))


def _model() -> Any:
    # Looked up, not imported: apps.ops.models imports this package (for the name rules).
    return apps.get_model("ops", "BreakerState")


class DatabaseStorage(SharedStorage):
    """pybreaker's storage interface on one row; counter updates are single UPDATEs, the swap a
    compare-and-set, so they are atomic on SQLite and PostgreSQL alike without a transaction."""

    def __init__(self, name: str) -> None:
        super().__init__("database")
        self.row: QuerySet = _model().objects.filter(name=name)

    def _get(self, column: str) -> Any:
        return next(iter(self.row.values_list(column, flat=True)), _NEVER_USED[column])

    state = property(lambda self: self._get("state"), lambda self, value: self.row.update(state=value))
    counter = property(lambda self: self._get("failure_count"))
    success_counter = property(lambda self: self._get("success_count"))
    opened_at = property(
        lambda self: self._get("opened_at"), lambda self, value: self.row.update(opened_at=value)
    )

    def increment_counter(self) -> None:
        self.row.update(failure_count=F("failure_count") + 1)

    def reset_counter(self) -> None:
        self.row.exclude(failure_count=0).update(failure_count=0)  # no write on the usual success

    def increment_success_counter(self) -> None:
        self.row.update(success_count=F("success_count") + 1)

    def reset_success_counter(self) -> None:
        self.row.exclude(success_count=0).update(success_count=0)

    def swap_state(self, state: str) -> str | None:
        for _ in range(SWAP_ATTEMPTS):
            previous = self._get("state")
            if self.row.filter(state=previous).update(state=state):
                return previous
        raise SharedStateUnavailable("the stored state kept changing", unreachable=False)


class DatabaseLink(SharedLink):
    """The database as the breakers' shared store, through one thread of this process."""

    def __init__(self) -> None:
        super().__init__("the database")
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="breaker-state")

    def execute(self, operation: Callable[[], T]) -> T:
        future = self._thread.submit(self._query, operation)
        try:
            return future.result(timeout=WAIT_SECONDS)
        except FutureTimeout:
            future.cancel()  # if still queued: a late write after the caller went local would be wrong
            raise SharedStateUnavailable(f"no answer within {WAIT_SECONDS:g} s") from None

    @staticmethod
    def _query(operation: Callable[[], T]) -> T:
        try:
            return operation()
        except DatabaseError as exc:
            connection.close()  # this thread's: the next operation connects afresh
            raise SharedStateUnavailable(f"{type(exc).__name__}: {exc}") from exc

    def open_storage(self, name: str) -> DatabaseStorage:
        _model().objects.bulk_create([_model()(name=name)], ignore_conflicts=True)
        return DatabaseStorage(name)

    def read_all(self) -> dict[str, StoredState]:
        rows = _model().objects.values_list("name", *_NEVER_USED)
        return {name: tuple(values) for name, *values in rows}

    def disconnect(self) -> None:
        # The thread's own connection (looked up there, hence the lambda); a later operation
        # connects again, as a Redis client would.
        closed = self._thread.submit(lambda: connection.close())
        with contextlib.suppress(FutureTimeout):
            closed.result(timeout=WAIT_SECONDS)
