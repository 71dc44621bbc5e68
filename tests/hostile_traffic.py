"""Requests a scanner or a hostile client sends, with every label source randomised: methods (odd and
invalid ones too), every URL pattern of the project with random parameters, junk paths, random
``X-Tenant-ID`` values and ``Host`` subdomains naming real tenants. Used by the tests and by
``make bench`` to show that anonymous clients cannot grow the metrics series.
"""

from __future__ import annotations

import random
import string

from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, reverse
from django.urls.converters import IntConverter

ODD_METHODS = ("BREW", "PROPFIND", "MKCOL", "PURGE", "SEARCH", "LOCK", "FOOBAR", "M-SEARCH", "GET2", "X")
STANDARD_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")
_SLUG_CHARS = string.ascii_lowercase + string.digits + "-"


def _token(rng: random.Random, alphabet: str, low: int, high: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(low, high)))


def url_patterns() -> list[tuple[str, dict]]:
    """(dotted name, converters by parameter) of every named URL pattern of the project."""
    found: list[tuple[str, dict]] = []

    def walk(patterns: list, namespace: str) -> None:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, f"{namespace}{entry.namespace}:" if entry.namespace else namespace)
            elif isinstance(entry, URLPattern) and entry.name:
                converters = getattr(entry.pattern, "converters", {})
                found.append((f"{namespace}{entry.name}", dict(converters)))

    walk(get_resolver().url_patterns, "")
    return found


def pattern_paths(rng: random.Random, count: int) -> list[str]:
    """``count`` paths, each of a random URL pattern with random parameters (patterns with parameters
    that take fixed choices, which a random value cannot reverse, are left out)."""
    patterns = url_patterns()
    paths: list[str] = []
    while len(paths) < count:
        name, converters = rng.choice(patterns)
        kwargs = {
            parameter: str(rng.randint(0, 10**9))
            if isinstance(converter, IntConverter)
            else _token(rng, _SLUG_CHARS, 1, 20)
            for parameter, converter in converters.items()
        }
        try:
            paths.append(reverse(name, kwargs=kwargs or None))
        except NoReverseMatch:  # a random value the pattern refuses: try another
            continue
    return paths


def hostile_requests(count: int, *, tenants: list[str], base_domain: str, seed: int = 7) -> list[dict]:
    """``count`` requests as ``{"method", "path", "headers"}``, with nothing that logs in."""
    rng = random.Random(seed)
    known_paths = pattern_paths(rng, count)
    requests = []
    for index in range(count):
        headers = {"X-Tenant-ID": rng.choice([*tenants, _token(rng, _SLUG_CHARS + "_.%$", 1, 40)])}
        if index % 2:
            subdomain = rng.choice([*tenants, _token(rng, _SLUG_CHARS, 1, 30)])
            headers["Host"] = f"{subdomain}.{base_domain}"
        junk = f"/{_token(rng, _SLUG_CHARS, 1, 20)}/{rng.randint(0, 10**9)}?{_token(rng, _SLUG_CHARS, 0, 20)}"
        path = known_paths[index] if index % 5 else junk
        method = rng.choice([*STANDARD_METHODS, "GET", "GET", "POST", rng.choice(ODD_METHODS)])
        requests.append({"method": method, "path": path, "headers": headers})
    return requests
