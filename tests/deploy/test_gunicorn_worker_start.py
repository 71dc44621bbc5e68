"""What a worker does before its first request (``post_worker_init`` of ``deploy/gunicorn.conf.py``,
``apps.ops.gunicorn_hooks.prepare_worker``).

Run in a fresh interpreter each: freezing the garbage collector's objects is for the life of a
process, and the imports it checks must not have happened already.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import PROJECT_DIR
from tests.servers import subprocess_env

_WORKER_START = """
import gc, json, logging, runpy, sys
{setup}
runpy.run_path("deploy/gunicorn.conf.py")
from apps.ops.gunicorn_hooks import prepare_worker
class Worker:
    log = logging.getLogger("worker")
before = {{
    "urls": "dotmac.urls" in sys.modules,
    "migrations": "apps.ops.migrations.0001_breakers" in sys.modules,
    "frozen": gc.get_freeze_count(),
}}
prepare_worker(Worker())
print(json.dumps({{
    "before": before,
    "urls": "dotmac.urls" in sys.modules,
    "migrations": "apps.ops.migrations.0001_breakers" in sys.modules,
    "frozen": gc.get_freeze_count(),
    "tracked": len(gc.get_objects()),
}}))
"""


def _start_worker(setup: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _WORKER_START.format(setup=setup)],
        cwd=PROJECT_DIR,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_django_worker_loads_urls_and_migration_files_then_freezes_them():
    started = _start_worker("import django; django.setup()")
    assert started["before"] == {"urls": False, "migrations": False, "frozen": 0}
    assert started["urls"] and started["migrations"]
    # What loading created is out of the collector's walks; almost nothing is left for it.
    assert started["frozen"] > 20_000
    assert started["tracked"] < started["frozen"] / 10


def test_a_worker_of_a_plain_wsgi_app_only_freezes():
    started = _start_worker("")  # Django never set up: nothing to preload, nothing must fail
    assert not started["urls"] and not started["migrations"]
    assert started["frozen"] > 0
