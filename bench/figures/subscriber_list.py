"""The subscriber list at scale: p95 latency of the filtered list page in a tenant of 10,000
subscribers, next to the same page in the tenant of 50, measured in the same run.

One client, requests one after another, alternating the two tenants (so both see the same machine
at the same moments); the latency is from connect to the last byte of a fresh connection, as
``bench.load.http_get`` times it. The page asks for one status, sorted by name: a count, a sort over
a quarter of the large tenant, the filters' counts (cached ten seconds, as in production).
"""

from __future__ import annotations

import statistics

from bench.context import Bench
from bench.load import http_get
from bench.report import BenchError, FeatureMissing, Row

from . import Figure

FILTERED_LIST = "/subscribers/?status=pending&sort=name"
# Requests per tenant and second of Sizes.latency_seconds (200 each in a full run).
REQUESTS_PER_SECOND = 40


def _get(bench: Bench, server, cookie: str) -> float:
    response = http_get(server.port, FILTERED_LIST, headers={**bench.django_headers, "Cookie": cookie})
    if response.status == 404:
        raise FeatureMissing(f"GET {FILTERED_LIST} answered 404: the subscriber list is not in this build")
    if response.status != 200 or b"<tbody>" not in response.body:
        raise BenchError(f"GET {FILTERED_LIST} answered {response.status}, expected the list page")
    return response.seconds * 1000


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def subscriber_list_at_scale(bench: Bench) -> list[Row]:
    if "large_tenant_cookie" not in bench.seed:
        raise FeatureMissing("bench.seed creates no large tenant in this build")
    (server,) = bench.servers("full")
    cookies = {"small": bench.seed["session_cookie"], "large": bench.seed["large_tenant_cookie"]}
    for cookie in cookies.values():  # warm: the workers' first requests, the counts' cache
        for _ in range(5):
            _get(bench, server, cookie)
    timings: dict[str, list[float]] = {"small": [], "large": []}
    for _ in range(max(20, REQUESTS_PER_SECOND * bench.sizes.latency_seconds)):
        for name, cookie in cookies.items():
            timings[name].append(_get(bench, server, cookie))
    small, large = _p95(timings["small"]), _p95(timings["large"])
    subscribers = bench.seed["large_subscribers"]
    return [
        Row(
            "subscriber_list_10k",
            f"filtered subscriber list, p95: {subscribers:,} subscribers in the tenant vs "
            f"{bench.seed['subscribers']}",
            measured=(
                f"{large:.1f} ms vs {small:.1f} ms ({large / small:.2f}x); medians "
                f"{statistics.median(timings['large']):.1f} vs {statistics.median(timings['small']):.1f} ms"
            ),
            target="recorded",
            data={
                "path": FILTERED_LIST,
                "requests_each": len(timings["small"]),
                "p95_ms": {"large": large, "small": small},
                "median_ms": {
                    "large": statistics.median(timings["large"]),
                    "small": statistics.median(timings["small"]),
                },
                "subscribers": {"large": subscribers, "small": bench.seed["subscribers"]},
            },
        )
    ]


FIGURES = [Figure(("subscriber_list_10k",), subscriber_list_at_scale)]
