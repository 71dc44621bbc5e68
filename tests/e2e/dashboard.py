"""The PromQL of the shipped Grafana dashboard, with its variables filled in as Grafana would.

Grafana replaces template variables before a query reaches Prometheus: the dashboard's own
variables (``$tenant``: one value, or the ``allValue`` regex for "All") and Grafana's globals
(``$__rate_interval`` and friends), which depend on the query's step and the scrape interval.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent.parent
DASHBOARD_FILE = PROJECT_DIR / "deploy" / "grafana" / "dotmac-platform.json"

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")
# A metric name followed by its label matchers: name{...}. Matchers never contain braces.
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^{}]*\})")


@dataclass(frozen=True)
class PanelQuery:
    panel: str
    ref_id: str
    expr: str


def load_dashboard(path: Path = DASHBOARD_FILE) -> dict:
    return json.loads(path.read_text())


def panel_queries(dashboard: Mapping) -> Iterator[PanelQuery]:
    """Every Prometheus target of every panel, rows' nested panels included."""

    def walk(panels: list) -> Iterator[PanelQuery]:
        for panel in panels:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    yield PanelQuery(panel.get("title", "?"), target.get("refId", "?"), target["expr"])
            yield from walk(panel.get("panels", []))

    yield from walk(dashboard.get("panels", []))


def variable_queries(dashboard: Mapping) -> dict[str, str]:
    """The query of each ``query`` template variable, by name (``label_values(...)``)."""
    found = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable.get("query")
            found[variable["name"]] = query.get("query") if isinstance(query, dict) else query
    return found


def grafana_rate_interval(step_seconds: float, scrape_interval_seconds: float) -> float:
    """Grafana's ``$__rate_interval``: max($__interval + scrape interval, 4 * scrape interval)."""
    return max(step_seconds + scrape_interval_seconds, 4 * scrape_interval_seconds)


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """``expr`` with every variable replaced; KeyError names a variable nobody gave a value."""

    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in values:
            raise KeyError(f"no value for the dashboard variable ${name} in: {expr}")
        return values[name]

    return _VARIABLE.sub(value, expr)


def selectors(expr: str) -> list[str]:
    """Each ``metric{matchers}`` selector in an expression."""
    return [name + matchers for name, matchers in _SELECTOR.findall(expr)]


def label_values_call(query: str) -> tuple[str, str]:
    """``label_values(selector, label)`` → (selector, label)."""
    match = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", query, re.S)
    if not match:
        raise ValueError(f"not a label_values() query: {query}")
    return match.group(1).strip(), match.group(2)
