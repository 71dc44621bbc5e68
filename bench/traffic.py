"""Traffic that spreads over every route and many tenants: what grows metrics series and memory."""

from __future__ import annotations

import http.client
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from bench.context import Bench
from bench.load import LoadResult, http_get, require_clean, run_wrk
from bench.report import BenchError, FeatureMissing
from bench.servers import BenchServer

# Beside every named URL pattern: the probes (answered in middleware) and a path nothing matches.
EXTRA_PATHS = ("/live", "/ready", "/health", "/bench-no-such-page/")


def route_paths(bench: Bench) -> list[str]:
    return sorted(set(bench.seed["routes"]) | set(EXTRA_PATHS))


def send_once(
    bench: Bench,
    server: BenchServer,
    tenants: list[str],
    *,
    routes_per_tenant: int = 0,
    allow_socket_errors: bool = False,
) -> LoadResult:
    """Every route (or ``routes_per_tenant`` of them, a different slice for each next tenant) for
    a logged-in member of every tenant in ``tenants``, about once each.

    Responses ≥ 400 are expected (admin pages for tenant staff, GET on POST-only routes, the
    unmatched path); socket errors are not, unless workers are being recycled on purpose.
    """
    paths = route_paths(bench)
    total = min(routes_per_tenant or len(paths), len(paths)) * len(tenants)
    result = run_wrk(
        server.base_url,
        paths=paths,
        cookies=[bench.seed["tenant_cookies"][slug] for slug in tenants],
        paths_per_tenant=routes_per_tenant,
        seconds=max(60, total // 50),
        connections=8,
        headers=bench.django_headers,
        total_requests=total,
    )
    if allow_socket_errors:
        if result.requests == 0:
            raise BenchError(f"no request completed on {server.name}")
        return result
    return require_clean(result, f"route traffic on {server.name}", allow_http_errors=True)


def send_each(server: BenchServer, requests: list[dict], *, threads: int = 8) -> Counter:
    """Send every ``{"method", "path", "headers"}`` request, each on its own connection, from
    ``threads`` threads; count the answers by status (0: no answer)."""

    def one(request: dict) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            connection.request(request["method"], request["path"], headers=request["headers"])
            response = connection.getresponse()
            response.read()
            return response.status
        except (OSError, http.client.HTTPException):
            return 0
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return Counter(pool.map(one, requests))


def scrape(bench: Bench, server: BenchServer) -> tuple[float, bytes]:
    """One authorised scrape of ``/metrics``: (seconds, exposition)."""
    response = http_get(server.port, "/metrics", headers=bench.metrics_headers, timeout=60)
    if response.status == 404:
        raise FeatureMissing("GET /metrics answered 404: the metrics endpoint is not in this build")
    if response.status != 200:
        raise BenchError(f"GET /metrics on {server.name} answered {response.status}: {response.body[:200]!r}")
    return response.seconds, response.body


def series_count(exposition: bytes) -> int:
    """Samples in a text exposition (lines that are not comments)."""
    return sum(1 for line in exposition.splitlines() if line and not line.startswith(b"#"))


def tenant_label_values(exposition: bytes) -> set[str]:
    values = set()
    for line in exposition.splitlines():
        if line.startswith(b"http_tenant_requests_total{"):
            start = line.find(b'tenant="')
            if start >= 0:
                end = line.index(b'"', start + 8)
                values.add(line[start + 8 : end].decode())
    return values
