"""DotMac Platform under real gunicorn with production settings, for the end-to-end suites.

The server runs ``deploy/gunicorn.conf.py`` with ``DJANGO_ENV=production``: a strong random secret
key, ``ALLOWED_HOSTS``, bearer tokens for ``/metrics`` and the ops API, four workers, static files
collected once per test session exactly as the container image does at build time, and the
production SSL redirect. Two ways in, as in a cluster:

- plain HTTP from "inside the cluster": the kubelet's probes and Prometheus' scrapes (both exempt
  from the SSL redirect), and clients that send ``X-Forwarded-Proto: https`` as the ingress does
  after terminating TLS (:meth:`AppServer.request`);
- HTTPS straight to gunicorn (``tls=True``, a throwaway self-signed certificate), for a real browser,
  whose origin must be ``https://`` for Django's CSRF origin check under production settings.

It binds 127.0.0.1 only (``GUNICORN_BIND``; production binds every interface).
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.gunicorn import PROJECT_DIR, GunicornServer
from tests.servers import ServerError, free_port

WORKERS = 4
# What the ingress would send after terminating TLS (gunicorn trusts it from 127.0.0.1).
FORWARDED_HTTPS = {"X-Forwarded-Proto": "https"}


def _secret() -> str:
    return secrets.token_urlsafe(48)


@dataclass(frozen=True)
class Secrets:
    """The production secrets of one server: random per run, never a fixed test value."""

    django_secret_key: str = field(default_factory=_secret)
    metrics_bearer_token: str = field(default_factory=_secret)
    ops_api_token: str = field(default_factory=_secret)


def manage(env: Mapping[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``manage.py <args>`` in a subprocess with ``env``; raises with its output when it fails."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_DIR,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise ServerError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def collect_static(env: Mapping[str, str], static_root: Path) -> Path:
    """``collectstatic`` into ``static_root`` once (a marker file says it completed); the directory."""
    done = static_root / ".collected"
    if not done.exists():
        static_root.mkdir(parents=True, exist_ok=True)
        manage(
            {**env, "DJANGO_ENV": "production", "DJANGO_SECRET_KEY": _secret(), "ALLOWED_HOSTS": "localhost",
             "STATIC_ROOT": str(static_root)},
            "collectstatic", "--noinput", "--verbosity", "0",
        )  # fmt: skip
        done.touch()
    return static_root


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for localhost and 127.0.0.1 (openssl); (certificate, key)."""
    openssl = shutil.which("openssl")
    if not openssl:
        raise ServerError("openssl not found (apt-get install openssl); `make test` installs it")
    directory.mkdir(parents=True, exist_ok=True)
    certificate, key = directory / "localhost.crt", directory / "localhost.key"
    result = subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(certificate)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if result.returncode != 0:
        raise ServerError(f"openssl could not make a certificate:\n{result.stderr}")
    return certificate, key


@dataclass(frozen=True)
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class AppServer(GunicornServer):
    """A running gunicorn master with its workers; :meth:`stop` ends it with SIGTERM (the drain)."""

    def __init__(
        self, env: Mapping[str, str], *, port: int, secrets: Secrets, log_dir: Path, tls: bool
    ) -> None:
        # SIGTERM: the production drain (its announce phase is 0 s here), then wait for the exit.
        super().__init__(env, port=port, log_dir=log_dir, stop_signal=signal.SIGTERM, stop_timeout=40)
        self.secrets = secrets
        self.tls = tls

    @property
    def host(self) -> str:
        return f"{'localhost' if self.tls else '127.0.0.1'}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # our own throwaway certificate
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=context)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        forwarded_https: bool = True,
        timeout: float = 30.0,
    ) -> Answer:
        """One request on a fresh connection; ``forwarded_https`` adds what the ingress sends."""
        sent = {"Host": self.host}
        if forwarded_https and not self.tls:
            sent.update(FORWARDED_HTTPS)
        sent.update(headers or {})
        connection = self._connection(timeout)
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            return Answer(response.status, response.headers, response.read())
        finally:
            connection.close()

    def is_serving(self) -> bool:
        return self.request("GET", "/live", forwarded_https=False, timeout=2).status == 200

    def access_log(self) -> list[dict]:
        """The JSON access-log entries gunicorn wrote so far (``path``, ``status``, ``pid``...)."""
        entries = []
        for line in self.stdout_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("logger") == "gunicorn.access":
                entries.append(entry)
        return entries


def production_server(
    base_env: Mapping[str, str],
    *,
    run_dir: Path,
    static_root: Path,
    provisioning_url: str,
    tls: bool = False,
    extra_env: Mapping[str, str] | None = None,
) -> AppServer:
    """A configured, not yet started :class:`AppServer` (``base_env``: database, Redis, paths)."""
    port = free_port()
    server_secrets = Secrets()
    env = {
        key: value
        for key, value in base_env.items()
        if not key.startswith(("GUNICORN_", "PROMETHEUS_", "HEALTH_", "TENANT_", "METRICS_", "OPS_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="dotmac.settings",
        DJANGO_ENV="production",
        DJANGO_SECRET_KEY=server_secrets.django_secret_key,
        ALLOWED_HOSTS="localhost,127.0.0.1",
        METRICS_BEARER_TOKEN=server_secrets.metrics_bearer_token,
        OPS_API_TOKEN=server_secrets.ops_api_token,
        PROVISIONING_API_URL=provisioning_url,
        TENANT_HEADER_ENABLED="true",
        STATIC_ROOT=str(static_root),
        DATA_DIR=str(run_dir / "data"),
        GUNICORN_BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY=str(WORKERS),
        GUNICORN_RUNTIME_DIR=str(run_dir / "runtime"),
        PROMETHEUS_MULTIPROC_DIR=str(run_dir / "prometheus-multiproc"),
        # The drain's announce phase (5 s in production) only delays each test's teardown; the
        # drain itself is tested in tests/ops/test_shutdown.py.
        DRAIN_DELAY_SECONDS="0",
        LOG_LEVEL="info",
    )
    if tls:
        certificate, key = self_signed_certificate(run_dir)
        env["GUNICORN_CMD_ARGS"] = f"--certfile={certificate} --keyfile={key}"
    env.update(extra_env or {})
    os.makedirs(env["DATA_DIR"], exist_ok=True)
    return AppServer(port=port, secrets=server_secrets, env=env, log_dir=run_dir / "logs", tls=tls)
