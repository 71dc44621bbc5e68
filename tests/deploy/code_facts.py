"""What the code serves and reads, found in the code itself, for comparison with the manifests.

Environment variable names come from the settings modules and the gunicorn config (the only places
that read the environment); metric names from what ``/metrics`` exposes; the ops routes from
``apps.ops.urls``. Nothing here is a copied list.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# env_str("NAME"...), env_bool(...), _env("NAME"...), os.environ.get/setdefault("NAME"...),
# os.environ["NAME"], os.getenv("NAME"...).
_ENV_READ = re.compile(
    r"""\b(?:_?env(?:_[a-z]+)?|os\.environ\.(?:get|setdefault)|os\.getenv)\(\s*["']([A-Z][A-Z0-9_]*)["']"""
    r"""|os\.environ\[\s*["']([A-Z][A-Z0-9_]*)["']\s*\]"""
)
ENV_SOURCES = ("dotmac/settings/*.py", "deploy/gunicorn.conf.py")
NOT_IN_PODS = {"dotmac/settings/test.py"}  # the test suite's settings; a pod never loads them


def env_names_read_by_code() -> set[str]:
    names: set[str] = set()
    for pattern in ENV_SOURCES:
        for path in REPO.glob(pattern):
            if str(path.relative_to(REPO)) in NOT_IN_PODS:
                continue
            for match in _ENV_READ.finditer(path.read_text()):
                names.add(match.group(1) or match.group(2))
    return names


# --- Metrics -------------------------------------------------------------------------------------

_TYPE_LINE = re.compile(r"^# TYPE (\S+) (\S+)$", re.MULTILINE)
_SAMPLE_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s", re.MULTILINE)
_LABEL_NAME = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="')


def served_series(exposition: str) -> dict[str, set[str]]:
    """Series names a text exposition declares or shows, with the label names seen on each."""
    series: dict[str, set[str]] = {}
    for name, kind in _TYPE_LINE.findall(exposition):
        suffixes = {"histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum")}.get(
            kind, ("",)
        )
        for suffix in suffixes:
            series.setdefault(name + suffix, set())
    for name, labels in _SAMPLE_LINE.findall(exposition):
        series.setdefault(name, set()).update(_LABEL_NAME.findall(labels or ""))
    return series


def declared_label_names() -> dict[str, set[str]]:
    """Label names of every metric object in apps.ops.metrics.definitions, by series name."""
    from prometheus_client.metrics import MetricWrapperBase

    from apps.ops.metrics import definitions
    from apps.ops.metrics.prometheus_internals import declared_shape

    labels: dict[str, set[str]] = {}
    for value in vars(definitions).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        base, kind, label_names = declared_shape(value)
        names = set(label_names)
        if kind == "counter":
            labels[base + "_total"] = names
        elif kind == "histogram":
            for suffix in ("_bucket", "_count", "_sum"):
                labels[base + suffix] = names | ({"le"} if suffix == "_bucket" else set())
        else:
            labels[base] = names
    return labels


# --- PromQL ------------------------------------------------------------------------------------

_SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"""([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)\"""")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")


def selectors(expr: str) -> list[tuple[str, dict[str, str]]]:
    """(metric name, {label: matched value}) of every ``name{...}`` selector in a PromQL expression."""
    return [(name, dict(_MATCHER.findall(body))) for name, body in _SELECTOR.findall(expr)]


def grouping_labels(expr: str) -> set[str]:
    return {label.strip() for group in _GROUPING.findall(expr) for label in group.split(",") if label.strip()}


# --- Routes ------------------------------------------------------------------------------------


def ops_route_prefixes() -> list[str]:
    """The literal path prefix ("/metrics", "/api/v1/...") of every URL pattern of apps.ops.urls."""
    from django.urls import URLPattern, URLResolver
    from django.urls.resolvers import RegexPattern, RoutePattern

    from apps.ops import urls

    def literal(pattern) -> str:
        if isinstance(pattern, RoutePattern):
            return str(pattern._route).split("<", 1)[0]
        if isinstance(pattern, RegexPattern):
            return re.split(r"[\\()\[\].*+?{}|$]", str(pattern._regex).lstrip("^"), maxsplit=1)[0]
        raise AssertionError(f"unknown URL pattern type {type(pattern)!r}")

    prefixes = []

    def walk(patterns, base: str) -> None:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, base + literal(entry.pattern))
            elif isinstance(entry, URLPattern):
                prefixes.append("/" + base + literal(entry.pattern))

    walk(urls.urlpatterns, "")
    return prefixes
