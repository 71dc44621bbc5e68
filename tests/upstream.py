"""A real HTTP upstream for tests: a threaded ``http.server`` on 127.0.0.1, controlled by the test.

The test sets what it answers (``status``, ``delay`` before answering, ``body``, ``drip`` = seconds
between body bytes), reads what it received (``requests``), and can ``stop()`` it (connections are
then refused) and ``start()`` it again on the same port.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.servers import free_port


class _Server(ThreadingHTTPServer):
    # The default listen backlog (5) is shorter than the calls tests make at one moment; a SYN
    # dropped on a busy machine is retried only a second later.
    request_queue_size = 64


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class Upstream:
    port: int = field(default_factory=free_port)
    status: int = 200
    delay: float = 0.0
    body: bytes = b'{"ok": true}'
    drip: float = 0.0
    requests: list[ReceivedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def start(self) -> Upstream:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: with Nagle's algorithm the body of a
            # kept-alive answer waits for the client's delayed ACK (about 40 ms on Linux).
            disable_nagle_algorithm = True

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with upstream._lock:
                    upstream.requests.append(
                        ReceivedRequest(self.command, self.path, dict(self.headers), body)
                    )
                if upstream.delay:
                    time.sleep(upstream.delay)
                self.send_response(upstream.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(upstream.body)))
                self.end_headers()
                if upstream.drip:
                    for byte in upstream.body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(upstream.drip)
                else:
                    self.wfile.write(upstream.body)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

        self._server = serve(self.port, Handler)
        return self

    def stop(self) -> None:
        """Close the listening socket: new connections are refused."""
        self._server = shut(self._server)


def serve(port: int, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A threaded HTTP server on 127.0.0.1:``port``, serving from a daemon thread."""
    server = _Server(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def shut(server: ThreadingHTTPServer | None) -> None:
    """Stop serving and close the listening socket (new connections are refused); None."""
    if server is not None:
        server.shutdown()
        server.server_close()


@pytest.fixture(name="upstream")
def upstream_fixture():
    """A running :class:`Upstream` (import ``upstream_fixture`` to use the ``upstream`` fixture)."""
    server = Upstream().start()
    yield server
    server.stop()
