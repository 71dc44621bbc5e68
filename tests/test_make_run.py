"""`make run` from a fresh clone serves the app on the embedded default, and the demo login works."""

import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import PROJECT_DIR
from tests.servers import free_port, wait_until

pytestmark = pytest.mark.slow


def _get(opener, url: str):
    try:
        with opener.open(url, timeout=5) as response:
            return response.status, response.read().decode(), response.geturl()
    except OSError:
        return None


def test_make_run_serves_home_and_login_and_demo_login_works(tmp_path: Path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(PROJECT_DIR), str(clone)], check=True)
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_", "REDIS_", "PYTEST_"))
    }
    # Reuse this run's virtualenv (built from the same requirements) instead of a new download.
    env.update(PORT=str(port), VENV=str(Path(sys.executable).parent.parent), HOME=str(tmp_path))
    server = subprocess.Popen(
        ["make", "run"],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _get(opener, base + "/") is not None, timeout=120, message="make run to serve /")
        status, body, _ = _get(opener, base + "/")
        assert status == 200 and "DotMac Platform" in body

        status, body, _ = _get(opener, base + "/accounts/login/")
        assert status == 200
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1)
        form = urllib.parse.urlencode(
            {"username": "demo", "password": "demo-password", "csrfmiddlewaretoken": token, "next": ""}
        ).encode()
        request = urllib.request.Request(
            base + "/accounts/login/", data=form, headers={"Referer": base + "/"}
        )
        with opener.open(request, timeout=10) as response:
            assert response.status == 200
            assert response.geturl().endswith("/subscribers/")
            page = response.read().decode()
        assert "ada@example.net" in page
        assert "Demo Fibre ISP" in page
        # The embedded default: SQLite inside the clone, no server needed.
        assert (clone / "var" / "dotmac.sqlite3").exists()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    assert f"http://127.0.0.1:{port}/" in output
    assert "demo / demo-password" in output
