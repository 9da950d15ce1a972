"""The layering contracts in pyproject.toml ([tool.importlinter]) hold on the tree, and each one
fails when it is broken: a copy of the packages with one forbidden import added, checked by the
same `lint-imports` that scripts/test.sh runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("pipeline", "workers", "storymedia", "api")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_the_tree_keeps_every_contract() -> None:
    done = _lint(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("pipeline/model/leak.py", "import redis", "pipeline (the library) imports no front door"),
    ("pipeline/run/leak.py", "from storymedia.cli import shown", "pipeline (the library) imports no front door"),
    ("pipeline/plan/leak.py", "import subprocess", "pipeline.plan is pure"),
    ("pipeline/plan/leak.py", "from pipeline.storage import open_storage", "pipeline.plan is pure"),
    ("pipeline/storage/leak.py", "import boto3", "only pipeline.storage.s3 imports boto3"),
    ("workers/leak.py", "from storymedia import cli", "workers (the Celery executor) imports no other front door"),
    ("workers/leak.py", "from api import app", "workers (the Celery executor) imports no other front door"),
    ("api/leak.py", "import storymedia.cli", "the HTTP service (api) does not import the command line"),
    ("pipeline/run/leak.py", "import api.app", "pipeline (the library) imports no front door"),
    # an import inside a function counts as much as one at the top
    ("storymedia/local.py", "def _late() -> None:\n    import workers.app", "the local commands"),
])
def test_a_forbidden_import_breaks_its_contract(tmp_path: Path, module: str, line: str, contract: str) -> None:
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    existing = target.read_text("utf-8") if target.exists() else ""
    target.write_text(existing + "\n\n" + line + "\n", encoding="utf-8")
    done = _lint(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    broken = [row for row in done.stdout.splitlines() if " BROKEN" in row]
    assert len(broken) == 1 and contract in broken[0], done.stdout
    assert "5 kept, 1 broken" in done.stdout
    importer = module.removesuffix(".py").replace("/", ".")
    assert importer in done.stdout, "the report names the module that broke the contract"
