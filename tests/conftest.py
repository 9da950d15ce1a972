from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PRESETS = REPO / "presets"


@pytest.fixture(scope="session")
def presets():
    from pipeline.presets import load_presets

    return load_presets(PRESETS)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the installed ``storymedia`` command as a user would."""
    exe = Path(sys.executable).with_name("storymedia")
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)
