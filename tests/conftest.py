from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
PRESETS = REPO / "presets"

# Under pytest-xdist (scripts/test.sh: ``-n 2``) a group of tests runs in one worker process:
# each test file is a group, so its module fixtures (a rendered clip, a server) are made once, and
# the files whose tests use the session's sample story run are one group, so that run is made
# once. The slowest groups go first, so that no long one starts last while the other worker idles.
# (xdist's own ``--dist loadgroup`` marks do not reach its scheduler under pytest 9.)
SAMPLE_FILES = ("tests/e2e/test_sample_story.py", "tests/api/test_flow.py", "tests/cluster/test_api_flow.py")
_SAMPLE_GROUP = "sample-story"
_FIRST = (_SAMPLE_GROUP, "tests/cluster/test_faults.py", "tests/media/test_clips.py", "tests/cluster/",
          "tests/media/", "tests/e2e/", "tests/api/", "tests/unit/")


def test_group(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    return _SAMPLE_GROUP if path in SAMPLE_FILES else path


def _group_rank(group: str) -> int:
    return next((rank for rank, start in enumerate(_FIRST) if group.startswith(start)), len(_FIRST))


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return test_group(nodeid)

    return ByGroup(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    strays = [item.nodeid for item in items
              if "sample_run" in getattr(item, "fixturenames", ()) and test_group(item.nodeid) != _SAMPLE_GROUP]
    if strays:
        raise pytest.UsageError(f"add the files of {strays[:3]} to tests/conftest.py SAMPLE_FILES")
    if hasattr(config, "workerinput"):
        items.sort(key=lambda item: _group_rank(test_group(item.nodeid)))


@pytest.fixture(scope="session")
def presets():
    from pipeline.model.presets import load_presets

    return load_presets(PRESETS)


_MEASURE = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[2:]).returncode\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "open(sys.argv[1], 'w').write(str(peak))\n"
    "sys.exit(code)\n")


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the installed ``storymedia`` command as a user would.

    The result carries ``peak_mb``: the largest resident set of the command or any process it
    started (the render pool included).
    """
    exe = Path(sys.executable).with_name("storymedia")
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        # Its own session: on a timeout the whole group goes (the command, its pool and renders),
        # not only the measuring wrapper.
        process = subprocess.Popen([sys.executable, "-c", _MEASURE, rss.name, str(exe), *args], cwd=cwd,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                   start_new_session=True)
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
        result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        text = rss.read().strip()
    result.peak_mb = int(text) / 1024 if text else float("nan")  # type: ignore[attr-defined]
    return result


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    """The bundled sample story (examples/thanh-hoa) made and run embedded once per session:
    (story folder, the public area of the out folder, the `storymedia run` result). The cluster
    test compares with it."""
    import shutil

    example = REPO / "examples" / "thanh-hoa"
    root = tmp_path_factory.mktemp("thanh-hoa")
    shutil.copy(example / "story.toml", root / "story.toml")
    shutil.copy(example / "clip-thanh-hoa.vi.srt", root / "clip-thanh-hoa.vi.srt")
    made = subprocess.run([sys.executable, str(example / "make_media.py"), "--out", str(root / "media")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert made.returncode == 0, made.stdout + made.stderr
    out = root / "out"
    return root, out / "public", run_cli("run", str(root / "story.toml"), "--out", str(out))
