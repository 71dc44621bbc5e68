"""The ops API's contract (docs/openapi.yaml, OpenAPI 3.1): served as written, valid, and honoured.

``schemathesis run`` drives a production gunicorn with every phase and every check (status codes,
content types, headers, bodies, no 5xx, auth enforced, 405 with ``Allow`` for other methods), once
with the server's real token and once anonymous. Its budget is fixed by the number of examples per
operation; it prints the cases tried. The command line rather than the pytest integration: the
latter's lazy schema loader (needed for a server started by a fixture) fails on pytest 9.2.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import schemathesis
from django.conf import settings

from apps.ops.models import BreakerResetAudit
from tests.e2e.app_server import FORWARDED_HTTPS, AppServer, production_server
from tests.servers import RedisServer, subprocess_env

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
DOCUMENT_URL = "/api/v1/circuit-breakers/openapi.yaml"
# Fuzzed cases per operation and caller: about 700 cases in all; the module takes 15-25 s (< 40 s).
MAX_EXAMPLES = 100
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


def test_the_served_document_is_the_file_in_docs_and_valid_openapi_3_1(db, client):
    response = client.get(DOCUMENT_URL)  # anonymous
    assert response.status_code == 200
    assert response["Content-Type"] == "application/yaml"
    assert response.content == DOCUMENT.read_bytes()
    schema = schemathesis.openapi.from_file(response.content.decode())
    schema.validate()  # against the OpenAPI 3.1 meta-schema
    assert schema.raw_schema["openapi"].startswith("3.1.")


def test_the_document_allows_get_and_head_only(db, client):
    assert client.head(DOCUMENT_URL).status_code == 200
    response = client.post(DOCUMENT_URL)
    assert (response.status_code, response["Allow"], response["Content-Type"]) == (
        405,
        "GET, HEAD",
        "application/json",
    )


@pytest.fixture(scope="module")
def live_api(tmp_path_factory, collected_static, postgres_server, django_db_setup, django_db_blocker):
    """A production gunicorn (two workers) on the test database, with a Redis of its own and two
    breakers configured; the audit rows its resets write are deleted afterwards."""
    root = tmp_path_factory.mktemp("api-contract")
    redis = RedisServer().start()
    env = subprocess_env(
        DATABASE_URL=postgres_server.url(settings.DATABASES["default"]["NAME"]), REDIS_URL=redis.url
    )
    app = production_server(
        env,
        run_dir=root,
        static_root=collected_static,
        provisioning_url="http://127.0.0.1:9",  # declared, never called
        extra_env={
            "WEB_CONCURRENCY": "2",
            "LOG_LEVEL": "warning",
            "CIRCUIT_BREAKERS": json.dumps({"provisioning": {}, "billing": {"fail_max": 1}}),
        },
    )
    try:
        yield app.start(timeout=30)
    finally:
        app.stop()
        redis.destroy()
        with django_db_blocker.unblock():
            BreakerResetAudit.objects.all().delete()


def schemathesis_run(app: AppServer, report: Path, *headers: str) -> subprocess.CompletedProcess:
    """``schemathesis run`` against the document ``app`` serves, with ``headers`` on every request."""
    return subprocess.run(
        [str(SCHEMATHESIS), "run", f"{app.base_url}{DOCUMENT_URL}", "--checks", "all", "--mode", "all",
         "--phases", "examples,coverage,fuzzing,stateful", "--max-examples", str(MAX_EXAMPLES),
         "--generation-database", "none", "--request-timeout", "10", "--workers", "1", "--no-color",
         # What the ingress sends after terminating TLS (else the production SSL redirect answers).
         "--header", f"X-Forwarded-Proto: {FORWARDED_HTTPS['X-Forwarded-Proto']}",
         *(argument for header in headers for argument in ("--header", header)),
         "--report", "json", "--report-json-path", str(report)],
        cwd=report.parent,  # for any file it writes
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip


@pytest.mark.servers
@pytest.mark.slow
def test_a_schemathesis_run_finds_no_response_outside_the_contract(db, live_api, tmp_path, capsys):
    began = time.monotonic()
    tried = {}
    for caller, headers in {
        "with the token": [f"Authorization: Bearer {live_api.secrets.ops_api_token}"],
        "anonymous": [],
    }.items():
        report = tmp_path / "report.json"
        result = schemathesis_run(live_api, report, *headers)
        assert result.returncode == 0, f"{caller}:\n{result.stdout[-20000:]}\n{result.stderr[-5000:]}"
        tried[caller] = json.loads(report.read_text())["test_cases"]["generated"]
    with capsys.disabled():  # the figure belongs in `make test`'s output
        print(
            f"\nschemathesis: {sum(tried.values())} cases against the ops API, none outside its contract "
            f"({', '.join(f'{count} {caller}' for caller, count in tried.items())}; "
            f"{time.monotonic() - began:.1f} s)"
        )
