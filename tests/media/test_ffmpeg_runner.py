"""The ffmpeg runner: progress, time limit that kills the whole process group, clean scratch."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from pipeline.errors import RenderError
from pipeline.ingest.limits import Limits
from pipeline.model.story import parse_story
from pipeline.render.av import clip as video
from pipeline.render.av.runner import run_ffmpeg
from pipeline.run.asset import AssetWork, process_asset
from pipeline.storage import LocalStorage
from tests import clips

pytestmark = pytest.mark.media

ENDLESS = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-progress", "pipe:1", "-f", "lavfi",
           "-i", "testsrc2=size=1280x720:rate=25", "-t", "3600", "-c:v", "libx264", "-preset", "ultrafast",
           "-f", "null", "-"]


def ffmpeg_processes() -> set[str]:
    done = subprocess.run(["pgrep", "-f", "testsrc2=size=1280x720:rate=25"], capture_output=True, text=True,
                          check=False)
    return set(done.stdout.split())


def test_progress_is_reported_and_the_limit_kills_ffmpeg() -> None:
    seen: list[float] = []
    started = time.monotonic()
    with pytest.raises(RenderError) as caught:
        run_ffmpeg(ENDLESS, duration=3600, time_limit=2, on_progress=seen.append)
    assert time.monotonic() - started < 10
    assert caught.value.code == "timeout" and "limit" in caught.value.reason
    assert caught.value.command == ENDLESS
    assert seen and 0 < seen[-1] < 1 and seen == sorted(seen)
    time.sleep(0.5)
    assert not ffmpeg_processes(), "no ffmpeg left running"


def test_a_failed_render_fails_the_asset_and_leaves_no_scratch(tmp_path: Path, presets, monkeypatch) -> None:
    source = clips.phone_clip(tmp_path / "clip.mp4", seconds=2.0)
    monkeypatch.setattr(video, "time_limit", lambda info: 0.5)   # far too short: ffmpeg is killed
    story = parse_story({"story": {"id": "s", "title": "T", "published": "2023-09-12T21:15:00+07:00"},
                         "assets": [{"file": "clip.mp4"}]})
    work = AssetWork(order=1, path=source, asset=story.assets[0], story=story.story,
                     presets=(presets["broadcast"],))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    outcome = process_asset(work, LocalStorage(tmp_path / "out"), Limits(), scratch_root=scratch)
    assert outcome.entry["status"] == "failed"
    assert "limit" in outcome.entry["error"]["reason"]
    assert list(scratch.iterdir()) == [], "scratch removed"
    assert not list((tmp_path / "out").glob("renditions/**/*.mxf")), "nothing half-made was stored"
