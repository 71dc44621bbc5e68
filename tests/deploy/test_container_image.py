"""The container image: hadolint-clean, and its build and run steps work on this repository.

No container engine runs here, so ``docker build`` is impossible. Instead: hadolint lints the
Dockerfile, and the image's steps are replayed from the Dockerfile's own text — the build context
that .dockerignore lets through, the collectstatic/compileall RUN with its build-only key, then the
ENTRYPOINT with the runtime ENV and the Kubernetes ConfigMap — and the server must serve static
files and probes without writing a byte into the application tree (the root filesystem is
read-only in the pod).
"""

from __future__ import annotations

import http.client
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.servers import free_port, wait_until

from .conftest import REPO, config_map_data, run, tool

DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
IMAGE_VENV = "/opt/venv"
IMAGE_APP = "/app"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            logical.append(current)
            current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1].strip()) for text in logical]


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def env_assignments(arguments: str) -> dict[str, str]:
    return dict(token.split("=", 1) for token in shlex.split(arguments))


def allowed_context_paths() -> list[str]:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*", ".dockerignore is an allow-list: exclude everything first"
    return [p[1:].rstrip("/") for p in patterns if p.startswith("!")]


def test_hadolint_finds_nothing():
    result = run([tool("hadolint"), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)])
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_image_is_multi_stage_pinned_non_root_with_gunicorn_as_pid_1(rendered):
    build, runtime = stages()
    args = dict(a.split("=", 1) for kind, a in instructions() if kind == "ARG" and "=" in a)
    base = args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", base), base
    assert f"{sys.version_info.major}.{sys.version_info.minor}" == "3.11", (
        "the image's Python is the project's"
    )
    assert build[0][1] == "${PYTHON_IMAGE} AS build" and runtime[0][1] == "${PYTHON_IMAGE} AS runtime"
    runtime_args = dict(runtime)
    assert runtime_args["USER"] == "1000:1000"
    assert yaml.safe_load(runtime_args["ENTRYPOINT"]) == ["gunicorn", "-c", "deploy/gunicorn.conf.py"]
    env = env_assignments(runtime_args["ENV"])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["DJANGO_ENV"] == "production"
    config = config_map_data(rendered)
    assert runtime_args["EXPOSE"] == env["PORT"] == config["PORT"] == "8000"
    # The build-only key lives in one RUN's environment, never in an ENV or ARG of any stage.
    for kind, arguments in instructions():
        if kind in {"ENV", "ARG"}:
            assert "SECRET_KEY" not in arguments, arguments
    assert not [i for i in runtime if i[0] == "RUN" and "pip install" in i[1]], "nothing built at run stage"


def test_dockerignore_lets_through_exactly_what_the_image_copies():
    allowed = allowed_context_paths()
    build = stages()[0]
    sources = []
    for kind, arguments in build:
        if kind == "COPY" and "--from" not in arguments:
            sources += shlex.split(arguments)[:-1]
    assert sorted(s.rstrip("/") for s in sources) == sorted(p for p in allowed if "*" not in p)
    for path in allowed:
        assert (REPO / path).exists(), path
    ignored = [".venv", ".venv-tools", ".git", "tests", "var", "deploy/kubernetes/secrets", "docs"]
    for path in ignored:
        assert not any(path == a or path.startswith(a + "/") for a in allowed), path


@pytest.fixture
def built_app(tmp_path) -> Path:
    """The /app tree of the image, made by the Dockerfile's own build steps from the allowed context."""
    app = tmp_path / "app"
    app.mkdir()
    for path in allowed_context_paths():
        source = REPO / path
        if source.is_dir():
            shutil.copytree(source, app / path, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (app / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, app / path)
    (build_run,) = [a for kind, a in stages()[0] if kind == "RUN" and "collectstatic" in a]
    for command in build_run.split("&&"):
        words = shlex.split(command)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "REDIS_"))}
        while "=" in words[0] and not words[0].startswith("/"):
            key, value = words.pop(0).split("=", 1)
            env[key] = value.replace(IMAGE_APP, str(app), 1) if value.startswith(IMAGE_APP) else value
        if "DATA_DIR" in env:
            env["DATA_DIR"] = str(tmp_path / "build-data")
        # The image's virtualenv holds requirements.txt, as the test virtualenv does; its site-packages
        # are not ours to recompile, so that argument is dropped.
        words = [sys.executable if w == f"{IMAGE_VENV}/bin/python" else w for w in words]
        words = [w.replace(IMAGE_APP, str(app), 1) for w in words if not w.startswith(IMAGE_VENV)]
        result = subprocess.run(words, cwd=app, env=env, capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return app


def snapshot(tree: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(tree)): (p.stat().st_size, p.stat().st_mtime_ns) for p in tree.rglob("*")}


def get(port: int, path: str, host: str) -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers={"Host": host, "X-Forwarded-Proto": "https"})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.mark.servers
def test_built_tree_serves_static_files_and_probes_without_writing_to_it(
    built_app, server_env, tmp_path, rendered
):
    manifest = built_app / "staticfiles" / "staticfiles.json"
    assert manifest.exists(), "collectstatic ran with the production (hashed, compressed) storage"
    assert list((built_app / "dotmac" / "__pycache__").glob("*.pyc")), "bytecode compiled at build time"
    hashed_css = yaml.safe_load(manifest.read_text())["paths"]["css/app.css"]

    _, runtime = stages()
    runtime_env = env_assignments(dict(runtime)["ENV"])
    config = config_map_data(rendered)
    port = free_port()
    env = dict(server_env)
    env.update({k: v for k, v in runtime_env.items() if k != "PATH"})
    env.update(config)
    env.update(
        PATH=f"{Path(sys.executable).parent}:{env['PATH']}",
        STATIC_ROOT=runtime_env["STATIC_ROOT"].replace(IMAGE_APP, str(built_app), 1),
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        PYTHONPATH=str(built_app),
        # The pod's volumes, here under this test's temporary directory.
        HOME=str(tmp_path),
        DATA_DIR=str(tmp_path / "data"),
        GUNICORN_RUNTIME_DIR=str(tmp_path / "runtime"),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "multiproc"),
        GUNICORN_WORKER_TMP_DIR=str(tmp_path),
        HEALTH_DISK_PATHS=str(tmp_path),
        # Loopback only, one worker, no drain pause when the test stops it.
        GUNICORN_BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="1",
        DRAIN_DELAY_SECONDS="0",
    )
    before = snapshot(built_app)
    entrypoint = yaml.safe_load(dict(runtime)["ENTRYPOINT"])
    server = subprocess.Popen(
        entrypoint, cwd=built_app, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        host = config["ALLOWED_HOSTS"].split(",")[0]

        def live() -> bool:
            assert server.poll() is None, server.stdout.read()
            try:
                return get(port, "/live", "10.1.2.3:8000")[0] == 200
            except OSError:
                return False

        wait_until(live, timeout=30, message="gunicorn to answer /live")
        status, headers, body = get(port, f"/static/{hashed_css}", host)
        assert status == 200, body[:200]
        assert body == (built_app / "staticfiles" / hashed_css).read_bytes()
        assert "immutable" in headers["Cache-Control"], "hashed files are cached forever"
        assert get(port, "/static/css/app.css", host)[0] == 200
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output
    assert snapshot(built_app) == before, "the application tree was written to at run time"
