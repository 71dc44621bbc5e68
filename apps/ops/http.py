"""Outbound HTTP: every call to an external service goes through here, through a named breaker.

``request("POST", url, breaker="provisioning", json={...})`` returns a :class:`Response` for 2xx-4xx
answers, or raises :class:`CircuitOpenError`, an :class:`UpstreamError` (a failure for the breaker) or
:class:`InvalidURL`. ``CircuitOpenError`` is the breakers' own error (no call was made), not an
:class:`OutboundError`: a caller handles both. Timeouts and outcomes: docs/ARCHITECTURE.md, "Outbound HTTP".
"""

from __future__ import annotations

import json as jsonlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import urllib3
from django.conf import settings
from urllib3.exceptions import HTTPError, NewConnectionError, TimeoutError

from apps.ops import breakers, context
from apps.ops.breakers import CircuitOpenError as CircuitOpenError  # raised by request()

MAX_RESPONSE_BYTES = 1024 * 1024
_CHUNK_BYTES = 64 * 1024


class OutboundError(Exception):
    """The call did not produce a usable answer. ``breaker`` and ``url`` say which call."""

    def __init__(self, message: str, *, breaker: str, url: str) -> None:
        super().__init__(message)
        self.breaker = breaker
        self.url = url


class InvalidURL(OutboundError):
    """Not an absolute http(s) URL: a configuration error, not an upstream failure."""


class UpstreamError(OutboundError):
    """The upstream failed (counted by the breaker)."""


class UpstreamTimeout(UpstreamError):
    """No connection or no complete answer within the timeouts."""


class UpstreamConnectionError(UpstreamError):
    """Connection refused, reset, DNS failure, TLS failure..."""


class UpstreamProtocolError(UpstreamError):
    """The answer was garbled, cut short, or larger than ``MAX_RESPONSE_BYTES``."""


class UpstreamServerError(UpstreamError):
    """The upstream answered 5xx."""

    def __init__(self, message: str, *, breaker: str, url: str, status: int, body: bytes) -> None:
        super().__init__(message, breaker=breaker, url=url)
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body parsed as JSON (ValueError when it is not JSON)."""
        return jsonlib.loads(self.body)


def _new_pool() -> urllib3.PoolManager:
    return urllib3.PoolManager(num_pools=16, maxsize=16, block=False, retries=False)


def _replace_pool_in_child() -> None:
    global _pool
    _pool = _new_pool()  # a child must not share its parent's sockets


_pool = _new_pool()
os.register_at_fork(after_in_child=_replace_pool_in_child)


def _check_url(url: str, breaker: str) -> None:
    try:
        parts = urlsplit(url)
        valid = parts.scheme in {"http", "https"} and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        raise InvalidURL(f"not an absolute http(s) URL: {url!r}", breaker=breaker, url=url)


def _read_body(response: urllib3.BaseHTTPResponse, deadline: float, *, breaker: str, url: str) -> bytes:
    """The body, read chunk by chunk with each socket wait bounded by the time left."""
    chunks: list[bytes] = []
    size = 0
    sock = getattr(getattr(response, "connection", None), "sock", None)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise UpstreamTimeout("response body not received in time", breaker=breaker, url=url)
        if sock is not None:
            sock.settimeout(remaining)
        chunk = response.read1(_CHUNK_BYTES)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise UpstreamProtocolError(
                f"response larger than {MAX_RESPONSE_BYTES} bytes", breaker=breaker, url=url
            )
        chunks.append(chunk)


def _translate(exc: Exception, *, breaker: str, url: str) -> Exception:
    """urllib3/socket errors → our UpstreamError kinds (anything else is left as it is)."""
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, NewConnectionError):  # a subclass of ConnectTimeoutError: test it first
        return UpstreamConnectionError(f"cannot connect: {exc}", breaker=breaker, url=url)
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout(f"timed out: {exc}", breaker=breaker, url=url)
    if isinstance(exc, HTTPError | OSError):
        return UpstreamConnectionError(f"{type(exc).__name__}: {exc}", breaker=breaker, url=url)
    return exc


def request(
    method: str,
    url: str,
    *,
    breaker: str,
    json: Any = None,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> Response:
    """Send one request through the breaker ``breaker`` (see the module doc for the outcomes)."""
    _check_url(url, breaker)
    circuit = breakers.get_breaker(breaker)
    total = circuit.request_timeout if timeout is None else min(timeout, circuit.request_timeout)
    connect = min(settings.OUTBOUND_HTTP_CONNECT_TIMEOUT, total)
    send_headers = {
        "User-Agent": f"{settings.SERVICE_NAME}/{settings.APP_VERSION}",
        "Accept": "application/json",
    }
    request_id = context.request_id.get()
    if request_id:
        send_headers["X-Request-ID"] = request_id
    if json is not None:
        body = jsonlib.dumps(json).encode()
        send_headers["Content-Type"] = "application/json"
    send_headers.update(headers or {})

    def exchange() -> Response:
        deadline = time.monotonic() + total
        response = None
        try:
            response = _pool.request(
                method,
                url,
                body=body,
                headers=send_headers,
                timeout=urllib3.Timeout(connect=connect, read=total, total=total),
                retries=False,
                redirect=False,
                preload_content=False,
            )
            content = _read_body(response, deadline, breaker=breaker, url=url)
        except Exception as exc:
            if response is not None:
                response.close()  # a half-read connection must not go back to the pool
            translated = _translate(exc, breaker=breaker, url=url)
            if translated is exc:
                raise
            raise translated from exc
        response.release_conn()
        if response.status >= 500:
            raise UpstreamServerError(
                f"upstream answered {response.status}",
                breaker=breaker,
                url=url,
                status=response.status,
                body=content,
            )
        return Response(status=response.status, body=content, headers=dict(response.headers))

    return circuit.call(exchange)
