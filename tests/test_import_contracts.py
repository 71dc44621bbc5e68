"""The import contracts of ``.importlinter`` hold, and each one fails on a deliberate violation."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import PROJECT_DIR

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def tree(tmp_path) -> Path:
    """A copy of the packages and the contracts, to break on purpose."""
    for package in ("apps", "dotmac"):
        shutil.copytree(
            PROJECT_DIR / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(PROJECT_DIR / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


def test_the_contracts_hold():
    result = lint_imports(PROJECT_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        (
            "apps/ops/violation.py",
            "from apps.subscribers import models\n",
            "The ops layer imports no business app",
        ),
        (
            "apps/subscribers/violation.py",
            "from apps.ops import shutdown\n",
            "Business apps import only the public modules of ops",
        ),
        (
            "apps/tenants/violation.py",
            "import apps.ops.health.runner\n",
            "Business apps import only the public",
        ),
        (  # the breakers record metrics: metrics importing the breakers closes a cycle
            "apps/ops/metrics/violation.py",
            "import apps.ops.breakers\n",
            "No import cycles between sibling modules",
        ),
    ],
    ids=[
        "ops-imports-a-business-app",
        "business-app-imports-ops-internals",
        "tenants-import-ops-internals",
        "a-cycle-between-siblings",
    ],
)
def test_a_deliberate_violation_breaks_its_contract(tree, module, line, contract):
    (tree / module).write_text(line)
    result = lint_imports(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout
    assert contract in " ".join(result.stdout.split())
