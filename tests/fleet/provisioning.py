"""A provisioning API for the fleet that honours ``Idempotency-Key`` and logs every request.

``POST /subscribers`` provisions the subscriber named in the body and answers 201, unless the test
set ``status`` to something else (500 for an outage). A request whose key already provisioned
something is answered with the same 201 and provisions nothing again (``replayed``), as payment and
provisioning APIs document. The log says, per request, its key, the subscriber and the answer, so
a test can tell how many times each subscriber was really provisioned.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.servers import free_port
from tests.upstream import serve, shut


@dataclass(frozen=True)
class Call:
    at: float  # monotonic
    key: str
    subscriber_id: int | None
    status: int
    replayed: bool


class ProvisioningAPI:
    def __init__(self) -> None:
        self.port = free_port()
        self.status = 201
        self.delay = 0.0  # seconds before answering (a slow API)
        self.calls: list[Call] = []
        self._in_progress: dict[int, int | None] = {}  # client port -> subscriber id, until answered
        self._provisioned: dict[str, int] = {}  # idempotency key -> subscriber id
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def start(self) -> ProvisioningAPI:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    subscriber_id = json.loads(body).get("subscriber_id")
                except ValueError:
                    subscriber_id = None
                key = self.headers.get("Idempotency-Key", "")
                with api._lock:
                    api._in_progress[self.client_address[1]] = subscriber_id
                try:
                    self._answer(subscriber_id, key)
                finally:
                    with api._lock:
                        api._in_progress.pop(self.client_address[1], None)

            def _answer(self, subscriber_id: int | None, key: str) -> None:
                if api.delay:
                    time.sleep(api.delay)
                with api._lock:
                    replayed = key in api._provisioned
                    status = 201 if replayed else api.status
                    if status == 201 and not replayed:
                        api._provisioned[key] = subscriber_id
                    api.calls.append(Call(time.monotonic(), key, subscriber_id, status, replayed))
                answer = json.dumps({"subscriber_id": subscriber_id, "replayed": replayed}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = serve(self.port, Handler)
        return self

    def stop(self) -> None:
        self._server = shut(self._server)

    def in_progress(self) -> dict[int, int | None]:
        """The requests not answered yet: the client's port -> the subscriber."""
        with self._lock:
            return dict(self._in_progress)

    def log(self) -> list[Call]:
        with self._lock:
            return list(self.calls)

    def provisioned(self) -> dict[int, int]:
        """How many times each subscriber was really provisioned (replays not counted)."""
        counts: dict[int, int] = {}
        for call in self.log():
            if call.status == 201 and not call.replayed:
                counts[call.subscriber_id] = counts.get(call.subscriber_id, 0) + 1
        return counts
