"""Prints, after the session, how many cases the URL fuzz tried (shown in ``make test`` output)."""

from __future__ import annotations

from collections import Counter

# Filled by tests/fuzz/test_urls.py: one count per request sent, by status class ("2xx", "4xx", ...).
CASES: Counter[str] = Counter()


def pytest_terminal_summary(terminalreporter):
    if CASES:
        by_class = ", ".join(f"{status_class}: {count}" for status_class, count in sorted(CASES.items()))
        terminalreporter.write_line(f"URL fuzz (Hypothesis): {CASES.total()} cases tried ({by_class})")
