"""Outbound HTTP through a breaker, against a real local upstream (threaded http.server)."""

from __future__ import annotations

import threading
import time

import pytest

from apps.ops import breakers, context, http
from tests.ops.breaker_support import configure
from tests.servers import free_port, wait_until
from tests.upstream import upstream_fixture  # noqa: F401

pytestmark = pytest.mark.usefixtures("fresh_breakers")


def state(name: str) -> str:
    return breakers.get_breaker(name).status().state


def test_a_2xx_answer_is_returned_with_its_body(settings, upstream):
    upstream.body = b'{"id": 42}'
    response = http.request("POST", f"{upstream.url}/things", breaker="ok-api", json={"name": "x"})
    assert (response.status, response.ok, response.json()) == (200, True, {"id": 42})
    [received] = upstream.requests
    assert (received.method, received.path, received.json()) == ("POST", "/things", {"name": "x"})
    assert received.headers["Content-Type"] == "application/json"


def test_five_5xx_answers_open_the_breaker_then_calls_fail_fast_without_a_request(settings, upstream):
    upstream.status = 502
    for _ in range(5):
        with pytest.raises(http.UpstreamServerError) as error:
            http.request("GET", f"{upstream.url}/x", breaker="flaky-api")
        assert error.value.status == 502
    assert state("flaky-api") == "open"
    assert upstream.request_count == 5

    with pytest.raises(http.CircuitOpenError) as rejected:
        http.request("GET", f"{upstream.url}/x", breaker="flaky-api")
    assert rejected.value.retry_after > 0
    assert upstream.request_count == 5  # the upstream saw nothing


def test_4xx_answers_never_open_the_breaker(settings, upstream):
    for status in (400, 401, 403, 404, 409, 422, 429) * 2:
        upstream.status = status
        response = http.request("GET", f"{upstream.url}/x", breaker="picky-api")
        assert (response.status, response.ok) == (status, False)
    status = breakers.get_breaker("picky-api").status()
    assert (status.state, status.failure_count) == ("closed", 0)


def test_half_open_after_recovery_three_successes_close_and_a_failure_reopens(settings, upstream):
    configure(settings, "recovering-api", reset_timeout=2)
    url = f"{upstream.url}/x"
    upstream.status = 500
    for _ in range(5):
        with pytest.raises(http.UpstreamServerError):
            http.request("GET", url, breaker="recovering-api")
    upstream.status = 200
    with pytest.raises(http.CircuitOpenError):
        http.request("GET", url, breaker="recovering-api")

    def trial_passes() -> bool:
        try:
            http.request("GET", url, breaker="recovering-api")
        except http.CircuitOpenError:
            return False
        return True

    wait_until(trial_passes, timeout=5, message="half-open")
    assert state("recovering-api") == "half-open"
    http.request("GET", url, breaker="recovering-api")
    http.request("GET", url, breaker="recovering-api")
    assert state("recovering-api") == "closed"

    # Open it again, let it half-open, and fail the trial: open again at once.
    upstream.status = 503
    for _ in range(5):
        with pytest.raises(http.UpstreamServerError):
            http.request("GET", url, breaker="recovering-api")
    upstream.status = 200
    wait_until(trial_passes, timeout=5, message="half-open again")
    upstream.status = 503
    with pytest.raises(http.UpstreamServerError):
        http.request("GET", url, breaker="recovering-api")
    assert state("recovering-api") == "open"
    before = upstream.request_count
    with pytest.raises(http.CircuitOpenError):
        http.request("GET", url, breaker="recovering-api")
    assert upstream.request_count == before


def test_connection_refused_counts_as_a_failure(settings):
    configure(settings, "gone-api", fail_max=2)
    url = f"http://127.0.0.1:{free_port()}/x"  # nothing listens there
    for _ in range(2):
        with pytest.raises(http.UpstreamConnectionError):
            http.request("GET", url, breaker="gone-api")
    assert state("gone-api") == "open"


# Timeouts: each deadline lies well above the timeout that applies, below what another would cost.


def test_a_slow_upstream_times_out_within_the_request_timeout_and_counts(settings, upstream):
    configure(settings, "slow-api", fail_max=2, request_timeout=0.3)
    upstream.delay = 3
    started = time.monotonic()
    with pytest.raises(http.UpstreamTimeout):
        http.request("GET", f"{upstream.url}/x", breaker="slow-api")
    assert time.monotonic() - started < 2
    assert breakers.get_breaker("slow-api").status().failure_count == 1


def test_a_slow_dripping_body_is_cut_at_the_request_timeout(settings, upstream):
    configure(settings, "drip-api", request_timeout=0.5)
    upstream.body = b"x" * 200
    upstream.drip = 0.05  # 10 s for the whole body, each byte well within any per-read timeout
    started = time.monotonic()
    with pytest.raises(http.UpstreamTimeout):
        http.request("GET", f"{upstream.url}/x", breaker="drip-api")
    assert time.monotonic() - started < 5


def test_a_smaller_timeout_per_call_is_honoured_but_never_a_larger_one(settings, upstream):
    configure(settings, "bounded-api", request_timeout=1.5)
    upstream.delay = 4
    started = time.monotonic()
    with pytest.raises(http.UpstreamTimeout):
        http.request("GET", f"{upstream.url}/x", breaker="bounded-api", timeout=0.1)
    assert time.monotonic() - started < 1  # the breaker's 1.5 s did not apply
    started = time.monotonic()
    with pytest.raises(http.UpstreamTimeout):
        http.request("GET", f"{upstream.url}/x", breaker="bounded-api", timeout=30)
    assert time.monotonic() - started < 3.5  # nor did the call's 30 s


def test_an_oversized_answer_is_a_protocol_error(settings, upstream):
    upstream.body = b"x" * (http.MAX_RESPONSE_BYTES + 1)
    with pytest.raises(http.UpstreamProtocolError):
        http.request("GET", f"{upstream.url}/x", breaker="huge-api")
    assert breakers.get_breaker("huge-api").status().failure_count == 1


@pytest.mark.parametrize("url", ["", "ftp://example.com/x", "/relative", "http://", "not a url"])
def test_an_invalid_url_is_refused_before_the_breaker(settings, url):
    with pytest.raises(http.InvalidURL):
        http.request("GET", url, breaker="misconfigured-api")
    assert breakers.get_breaker("misconfigured-api").status().failure_count == 0


def test_the_request_id_of_the_current_request_is_forwarded(settings, upstream):
    token = context.request_id.set("req-123")
    try:
        http.request("GET", f"{upstream.url}/x", breaker="traced-api")
    finally:
        context.request_id.reset(token)
    assert upstream.requests[0].headers["X-Request-ID"] == "req-123"


def eight_at_once(url: str) -> tuple[float, list[int]]:
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def call() -> None:
        barrier.wait()
        statuses.append(http.request("GET", url, breaker="parallel-api").status)

    threads = [threading.Thread(target=call) for _ in range(8)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - started, statuses


def test_eight_concurrent_calls_to_a_slow_upstream_run_side_by_side(settings, upstream):
    upstream.delay = 1.0
    elapsed, statuses = eight_at_once(f"{upstream.url}/x")
    assert statuses == [200] * 8
    # One at a time would take 8 s; side by side about 1 s (how fast exactly is the benchmark's job).
    assert elapsed < 4, f"8 concurrent calls of 1 s took {elapsed:.3f} s"
