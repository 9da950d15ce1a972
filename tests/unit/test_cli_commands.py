"""The command line by area: every command and option where users expect it, the local commands
loading nothing of the cluster, `presets` listing every kind of rendition."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from pipeline.model.presets import load_presets
from storymedia.cli import COMMANDS, cli
from storymedia.local import rendition_rows
from tests.conftest import PRESETS

STORYMEDIA = Path(sys.executable).with_name("storymedia")
CLUSTER_URLS = ("--broker-url", "--storage-url", "--private-storage-url")
OPTIONS = {
    "run": ("--out", "--workers", "--presets", "--public-url", "--quiet"),
    "presets": ("--presets",),
    "submit": ("--wait", "--breaking", "--timeout", "--presets", "--quiet", *CLUSTER_URLS),
    "status": ("--json", *CLUSTER_URLS),
    "manifest": ("--presign", "--expires", *CLUSTER_URLS),
    "pull": ("--preset", "--dest", *CLUSTER_URLS),
    "worker": ("--queues", "-Q", "--concurrency", "-c", "--name", "-n", "--loglevel", "-l", *CLUSTER_URLS),
    "beat": ("--loglevel", "-l", *CLUSTER_URLS),
    "reconcile": ("--stale-after", "--dry-run", *CLUSTER_URLS),
    "cancel": ("--out", *CLUSTER_URLS),
    "rerun": ("--preset", "--out", "--workers", "--presets", "--public-url", "--wait", "--timeout", "--quiet",
              *CLUSTER_URLS),
    "serve": ("--host", "--port", "--out", "--presets", "--workers"),
    "token": (),
}


def _storymedia(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(STORYMEDIA), *args], capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})})


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_every_command_keeps_its_options(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None and command.name == name
    declared = {option for param in command.params for option in param.opts + param.secondary_opts}
    assert set(OPTIONS[name]) <= declared, set(OPTIONS[name]) - declared


def test_the_group_lists_every_command_and_only_those() -> None:
    assert cli.list_commands(click.Context(cli)) == sorted(OPTIONS) == sorted(COMMANDS)
    assert cli.get_command(click.Context(cli), "nonsense") is None


def test_the_local_commands_load_nothing_of_the_cluster() -> None:
    code = ("import sys, click\n"
            "from storymedia.cli import cli\n"
            "for name in ('run', 'presets'):\n"
            "    cli.get_command(click.Context(cli), name)\n"
            "loaded = sorted({m.split('.')[0] for m in sys.modules} & {'workers', 'celery', 'kombu', 'redis'})\n"
            "print(','.join(loaded) or 'none')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "none"


def test_python_dash_m_storymedia_is_the_same_command_line() -> None:
    module = subprocess.run([sys.executable, "-m", "storymedia", "--help"], capture_output=True, text=True,
                            timeout=60, check=False, env={**os.environ, "COLUMNS": "200"})
    script = _storymedia("--help")
    assert module.returncode == script.returncode == 0
    assert module.stdout == script.stdout
    for name in OPTIONS:
        assert f"  {name} " in script.stdout


def test_presets_lists_clip_and_audio_renditions_beside_the_images() -> None:
    presets = load_presets(PRESETS)
    web = rendition_rows(presets["web"])
    assert web[0].startswith("w2000 jpeg, w2000 webp, w1600 jpeg"), "image renditions as before"
    assert web[1].startswith("clips: mp4-1080 mp4 1920x1080, mp4-720 mp4 1280x720, hls hls 1080p 1920x1080")
    assert "poster poster jpeg 1280 wide" in web[1] and "captions webvtt" in web[1]
    assert "sprite sprite jpeg 160 wide every 2 s" in web[1]
    broadcast = rendition_rows(presets["broadcast"])
    assert broadcast == ["still-1080 jpeg 1920x1080",
                         "clips: xdcam-hd422 xdcam 50 Mb/s, proxy-1080p25 mp4 1920x1080"]
    assert rendition_rows(presets["radio"]) == [
        "audio (also from clips): bwf bwf -23 LUFS, aac-128 aac 128k -16 LUFS, mp3-128 mp3 128k -16 LUFS"]
    shown = _storymedia("presets", env={"COLUMNS": "400"})
    assert shown.returncode == 0, shown.stderr
    for text in ("still-1080 jpeg 1920x1080", "xdcam-hd422 xdcam 50 Mb/s", "mp3-128 mp3 128k -16 LUFS",
                 "square jpeg 1080x1080", "vertical mp4 1080x1920"):
        assert text in shown.stdout, text


def test_an_unknown_worker_queue_is_one_error_line_not_an_internal_error() -> None:
    done = _storymedia("worker", "--queues", "image,nope")
    assert done.returncode == 3
    assert done.stderr.startswith("error: --queues: unknown queue(s) nope; the queues are probe, image,")
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr


def test_a_bad_broker_url_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    done = _storymedia("status", "some-story", "--broker-url", "amqp://guest:Hunter2Pw@rabbit//",
                       "--storage-url", f"file://{tmp_path}/store")
    assert done.returncode == 3
    assert "must be a redis:// or rediss:// URL (got 'amqp://***@rabbit//')" in done.stderr
    assert "Hunter2Pw" not in done.stdout + done.stderr
