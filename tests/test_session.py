"""The session-end check: a process the suite started and left running fails the run."""

from __future__ import annotations

import subprocess
import sys

from tests.servers import PROJECT_DIR, subprocess_env

LEAKY_TEST = """
import subprocess
from tests.servers import subprocess_env

def test_starts_a_server_and_forgets_it(tmp_path):
    process = subprocess.Popen(["sleep", "600"], env=subprocess_env(), start_new_session=True)
    (tmp_path.parent.parent / "leaked.pid").write_text(str(process.pid))
"""


def test_a_process_left_running_fails_the_run_and_is_killed(tmp_path):
    leaky = tmp_path / "test_leaky.py"
    leaky.write_text(LEAKY_TEST)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(PROJECT_DIR / "setup.cfg"),
         "--rootdir", str(PROJECT_DIR), "--basetemp", str(tmp_path / "base"), str(leaky)],
        cwd=PROJECT_DIR, env=subprocess_env(DOTMAC_TEST_STOP_DEADLINE="2"), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    pid = int((tmp_path / "leaked.pid").read_text())
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 passed" in run.stdout
    assert f"{pid}: sleep 600" in run.stdout
    assert "outlived it (now killed)" in run.stdout
    # Killed: gone, or a zombie waiting for the init process at most.
    state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout
    assert state.strip()[:1] in ("", "Z"), state
