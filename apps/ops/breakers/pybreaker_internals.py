"""The one module that touches pybreaker's private members (written for the version below; an upgrade
fails tests/test_library_internals.py first). Private members used, each where pybreaker offers no
public way:

- ``CircuitBreaker._create_new_state`` — the state object for a state name;
- ``CircuitBreakerState._handle_error`` and ``CircuitBreakerState._handle_success`` — pybreaker's
  rules for the outcome of a call (count, notify listeners, open or close at the thresholds).
"""

from __future__ import annotations

from typing import Any

import pybreaker

WRITTEN_FOR = "pybreaker==1.4.1"


def new_state(
    breaker: pybreaker.CircuitBreaker, name: str, *, previous: Any = None, notify: bool = False
) -> Any:
    """pybreaker's state object for ``name``; ``notify`` resets its counters and tells the listeners."""
    # pybreaker builds state objects only in its ``state`` setter, which always notifies; a state
    # another process set must be adopted without notifying (it was reported where it was made).
    return breaker._create_new_state(name, prev_state=previous, notify=notify)


def record_failure(state: Any, exc: BaseException) -> None:
    """Apply pybreaker's rules for a failed call (an excluded error counts as a success)."""
    # pybreaker applies them only inside ``CircuitBreaker.call``, which holds the breaker's lock
    # for the whole protected call; our breaker runs the call unlocked and applies them after.
    try:
        state._handle_error(exc, reraise=False)
    except BaseException as raised:
        if raised is not exc:  # on a trip pybreaker re-raises the call's error despite reraise=False
            raise


def record_success(state: Any) -> None:
    """Apply pybreaker's rules for a successful call (in half-open: count it, close at the threshold)."""
    # Same reason as record_failure.
    state._handle_success()
