"""An ingress for the fleet: Debian's nginx, configured as ingress-nginx configures itself.

What comes from ingress-nginx's documented ConfigMap defaults (``../shared/FLEET-NOTES.md``):
upstream keep-alive (320 connections, 60 s idle, 10,000 requests, 1 h), ``proxy_next_upstream error
timeout`` with 3 tries (so a POST already sent is never passed to another pod), a 5 s connect
timeout, HTTP/1.1 to the pods, request and response buffering, 503 when the Service has no ready
endpoint, and 503 for requests over a rate limit (``limit-req-status-code``'s default). What comes
from the public Ingress' annotations: ``limit-rps`` (per client address, burst ``limit-rps`` times
``limit-burst-multiplier``, no delay), ``limit-connections``, ``proxy-body-size``,
``proxy-read-timeout`` and ``proxy-send-timeout``. Paths that the internal-paths Ingress refuses to
every address answer 403.

Not emulated: TLS. The ingress listens on plain HTTP on loopback and tells the pods what
ingress-nginx tells them after terminating TLS (``X-Forwarded-Proto: https``), so
``force-ssl-redirect`` has nothing to do. Endpoint changes: ingress-nginx applies them through Lua
without a reload; Debian's nginx has no Lua, so :meth:`Ingress.set_endpoints` reloads (SIGHUP), and
the load clients open a connection per request so that no idle client connection is closed by a
reload. One addition for the tests' bookkeeping: each answer names the pod that served it
(``X-Served-By``, the upstream address).
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from tests.fleet.manifests import WebTier
from tests.servers import ServerError, free_port, port_open, wait_until

# ingress-nginx's ConfigMap defaults (its documentation; see ../shared/FLEET-NOTES.md).
CONTROLLER_DEFAULTS = {
    "upstream-keepalive-connections": 320,
    "upstream-keepalive-timeout": 60,
    "upstream-keepalive-requests": 10000,
    "upstream-keepalive-time": "1h",
    "proxy-next-upstream": "error timeout",
    "proxy-next-upstream-tries": 3,
    "proxy-connect-timeout": 5,
    "proxy-read-timeout": 60,
    "proxy-send-timeout": 60,
    "proxy-body-size": "1m",
    "limit-req-status-code": 503,
    "limit-conn-status-code": 503,
    "limit-burst-multiplier": 5,
}
ANNOTATION = "nginx.ingress.kubernetes.io/"
EMPTY_BACKEND_STATUS = 503
GENERATION_PATH = "/.fleet-ingress-generation"


def setting(web: WebTier, name: str, controller: Mapping[str, object] | None = None) -> str:
    """An Ingress annotation, else the controller's ConfigMap (``controller``), else its default."""
    default = {**CONTROLLER_DEFAULTS, **(controller or {})}.get(name)
    return str(web.ingress_annotations.get(ANNOTATION + name, default))


class Ingress:
    """One nginx master on 127.0.0.1:``port`` proxying to the endpoints it is given."""

    def __init__(self, web: WebTier, *, settings: Mapping[str, object] | None = None) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.path.exists(binary):
            raise ServerError("nginx not found (apt-get install nginx); `make test` installs it")
        self.binary = binary
        self.web = web
        #: the controller's ConfigMap: its documented defaults, the test's overlay on top
        self.controller_settings = {**CONTROLLER_DEFAULTS, **(settings or {})}
        #: (listen port, pod port, source address) of each keep-alive lane (see open_lanes)
        self.lanes: tuple[tuple[int, int, str], ...] = ()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="dotmac-ingress-"))
        self.process: subprocess.Popen | None = None
        #: the pod ports new connections are proxied to (set once nginx has them)
        self.endpoints: tuple[int, ...] = ()
        self.generation = 0  # bumped by every configuration written
        self._lock = threading.Lock()
        #: (monotonic time, endpoint ports) each time the endpoints were applied
        self.history: list[tuple[float, tuple[int, ...]]] = []

    # --- Configuration --------------------------------------------------------------------------

    def setting(self, name: str) -> str:
        return setting(self.web, name, self.controller_settings)

    def _upstream(self, name: str, ports: Iterable[int]) -> str:
        servers = "".join(f"server 127.0.0.1:{port} max_fails=0;\n" for port in ports)
        return (
            f"upstream {name} {{\n{servers}"
            f"keepalive {self.setting('upstream-keepalive-connections')};\n"
            f"keepalive_timeout {self.setting('upstream-keepalive-timeout')}s;\n"
            f"keepalive_requests {self.setting('upstream-keepalive-requests')};\n"
            f"keepalive_time {self.setting('upstream-keepalive-time')};\n}}\n"
        )

    def _proxy(self, upstream: str) -> str:
        return (
            f"proxy_pass http://{upstream};\n"
            "proxy_http_version 1.1;\n"
            'proxy_set_header Connection "";\n'
            "proxy_set_header Host $host;\n"
            "proxy_set_header X-Request-ID $request_id;\n"
            "proxy_set_header X-Real-IP $remote_addr;\n"
            "proxy_set_header X-Forwarded-For $remote_addr;\n"
            "proxy_set_header X-Forwarded-Host $host;\n"
            "proxy_set_header X-Forwarded-Proto https;\n"
            f"proxy_connect_timeout {self.setting('proxy-connect-timeout')}s;\n"
            f"proxy_read_timeout {self.setting('proxy-read-timeout')}s;\n"
            f"proxy_send_timeout {self.setting('proxy-send-timeout')}s;\n"
            f"proxy_next_upstream {self.setting('proxy-next-upstream')};\n"
            f"proxy_next_upstream_tries {self.setting('proxy-next-upstream-tries')};\n"
            "proxy_buffering on;\nproxy_request_buffering on;\n"
            "add_header X-Served-By $upstream_addr always;\n"
        )

    def _lanes(self) -> str:
        """A server and an upstream of one pod per lane, each with a keep-alive cache of its own."""
        return "".join(
            self._upstream(f"lane{port}", [pod])
            + f"server {{\nlisten 127.0.0.1:{port};\nserver_name _;\nlocation / {{\n"
            + f"proxy_bind {address};\n{self._proxy(f'lane{port}')}}}\n}}\n"
            for port, pod, address in self.lanes
        )

    def config(self, endpoints: tuple[int, ...]) -> str:
        root = self.root
        user = "user root root;\n" if os.geteuid() == 0 else ""
        rps = self.setting("limit-rps") if ANNOTATION + "limit-rps" in self.web.ingress_annotations else None
        connections = self.web.ingress_annotations.get(ANNOTATION + "limit-connections")
        limits, zones = "", ""
        if rps:
            burst = int(rps) * int(self.setting("limit-burst-multiplier"))
            zones += f"limit_req_zone $binary_remote_addr zone=rps:5m rate={rps}r/s;\n"
            zones += f"limit_req_status {self.setting('limit-req-status-code')};\n"
            limits += f"limit_req zone=rps burst={burst} nodelay;\n"
        if connections:
            zones += "limit_conn_zone $binary_remote_addr zone=conn:5m;\n"
            zones += f"limit_conn_status {self.setting('limit-conn-status-code')};\n"
            limits += f"limit_conn conn {connections};\n"
        if endpoints:
            upstream, backend = self._upstream("pods", endpoints), self._proxy("pods")
        else:
            upstream, backend = "", f"return {EMPTY_BACKEND_STATUS};\n"
        denied = "".join(f"location {path} {{ return 403; }}\n" for path in self.web.denied_paths)
        # The harness' own: which configuration the workers answering now have loaded.
        denied += f'location = {GENERATION_PATH} {{ return 200 "{self.generation}"; }}\n'
        return (
            f"{user}worker_processes 1;\npid {root}/nginx.pid;\nerror_log {root}/error.log warn;\n"
            "events { worker_connections 2048; }\n"
            "http {\n"
            'log_format fleet \'$msec $remote_addr "$request" $status $upstream_addr $upstream_status '
            "$request_time';\n"
            f"access_log {root}/access.log fleet;\n"
            f"client_body_temp_path {root}/body;\nproxy_temp_path {root}/proxy;\n"
            f"fastcgi_temp_path {root}/fastcgi;\nuwsgi_temp_path {root}/uwsgi;\nscgi_temp_path {root}/scgi;\n"
            f"client_max_body_size {self.setting('proxy-body-size')};\n"
            f"{zones}{upstream}"
            f"server {{\nlisten 127.0.0.1:{self.port};\nserver_name _;\n{denied}"
            f"location / {{\n{limits}{backend}}}\n}}\n{self._lanes()}}}\n"
        )

    # --- Life cycle -----------------------------------------------------------------------------

    def start(self, endpoints: Iterable[int] = ()) -> Ingress:
        self.endpoints = tuple(sorted(endpoints))
        self._write(self.endpoints)
        self._stderr = open(self.root / "stderr.log", "ab")
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.root / "nginx.conf"), "-p", str(self.root), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        try:
            wait_until(self._serving, timeout=15, message=f"nginx on {self.port}")
        except TimeoutError as exc:
            self.stop()
            raise ServerError(f"nginx did not start: {exc}\n{self.log_tail()}") from exc
        self.history.append((time.monotonic(), self.endpoints))
        return self

    def _serving(self) -> bool:
        if self.process.poll() is not None:
            raise ServerError(f"nginx exited with {self.process.returncode}:\n{self.log_tail()}")
        return port_open(self.port)

    def _write(self, endpoints: tuple[int, ...]) -> None:
        self.generation += 1
        path = self.root / "nginx.conf"
        path.write_text(self.config(endpoints))
        result = subprocess.run(
            [self.binary, "-t", "-q", "-c", str(path), "-p", str(self.root), "-g", "daemon off;"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if result.returncode != 0:
            raise ServerError(f"nginx refused its configuration:\n{result.stderr}\n{path.read_text()}")

    def set_endpoints(self, endpoints: Iterable[int]) -> None:
        """Proxy to these pod ports from now on (a reload: running requests finish on old workers)."""
        with self._lock:
            new = tuple(sorted(endpoints))
            if new == self.endpoints:
                return
            self._write(new)
            self.process.send_signal(signal.SIGHUP)
            # nginx reloads in the background: wait until new connections get the new workers.
            wait_until(self._reloaded, timeout=10, interval=0.01, message="nginx to reload")
            self.endpoints = new
            self.history.append((time.monotonic(), new))

    def open_lanes(self, lanes: Iterable[tuple[int, str]]) -> list[int]:
        """Keep-alive lanes: per (pod port, source address), a port of the ingress proxying to that
        pod only, from that address, through an upstream keep-alive cache of its own, configured as
        the main one. A request through a lane reuses the lane's idle upstream connection or opens one,
        which the test can tell by its source address. Returns the lanes' ports."""
        with self._lock:
            self.lanes = tuple((free_port(), pod, address) for pod, address in lanes)
            self._write(self.endpoints)
            self.process.send_signal(signal.SIGHUP)
            wait_until(self._reloaded, timeout=10, interval=0.01, message="nginx to reload")
            return [port for port, _pod, _address in self.lanes]

    def _reloaded(self) -> bool:
        """The old worker stopped accepting (its title says it is shutting down) and the new one
        answers with the new configuration."""
        master = self.process.pid
        try:
            children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
            titles = [Path(f"/proc/{child}/cmdline").read_bytes().rstrip(b"\0") for child in children]
        except OSError:
            return False
        if titles.count(b"nginx: worker process") != 1:
            return False
        for _ in range(3):
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                connection.request("GET", GENERATION_PATH)
                if connection.getresponse().read().decode() != str(self.generation):
                    return False
            except (OSError, http.client.HTTPException):
                return False
            finally:
                connection.close()
        return True

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: let requests in flight finish
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process:
            self._stderr.close()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, characters: int = 3000) -> str:
        text = ""
        for name in ("stderr.log", "error.log"):
            path = self.root / name
            if path.exists():
                text += f"--- {name} ---\n{path.read_text(errors='replace')[-characters:]}\n"
        return text
