"""The cluster doing its everyday work (the sample story runs through it over HTTP, in
test_api_flow.py): the breaking-news lane, what editors and operators see (manifest with presigned URLs, pull, status of a failed render), refused settings."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import redis as redis_client

from tests.cluster.harness import Cluster, wait_for
from tests.cluster.stories import small_story
from tests.cluster.test_faults import job_of, objects, verify_store

pytestmark = pytest.mark.cluster

def assert_public_area_holds_no_gps(running: Cluster, tmp_path: Path) -> None:
    """Every object of the public bucket downloaded and read by exiftool: no GPS, no serial number
    (the sample story's photos carry both); the raws are in the private bucket."""
    public, private = running.storage(), running.storage(private=True)
    folder = tmp_path / "public-area"
    for key in public.list(""):
        target = folder / key
        target.parent.mkdir(parents=True, exist_ok=True)
        public.download(key, target)
    found = subprocess.run(["exiftool", "-r", "-ext", "*", "-j", "-G1", "-a", "-ee", str(folder)],
                           capture_output=True, text=True, check=False, timeout=300)
    leaked = [(tags["SourceFile"], key) for tags in json.loads(found.stdout or "[]") for key in tags
              if "GPS" in key or "SerialNumber" in key]
    assert leaked == []
    assert list(private.list("raw/")), "the originals are kept, privately"


def test_breaking_news_has_its_own_lane(cluster: Cluster, tmp_path: Path,
                                        redis_server: Any) -> None:
    breaking = small_story(tmp_path / "breaking", "tin-nong", clip_seconds=2, photos=1)
    routine = small_story(tmp_path / "routine", "luu-tru", clip_seconds=2, photos=1)
    lane = ",".join(f"breaking-{s}" for s in ("probe", "image", "video", "io", "manifest"))
    cluster.worker(queues=lane, concurrency=2, name="fast").wait_ready()
    queued = cluster.cli("submit", str(routine))
    assert queued.returncode == 0, queued.stderr
    done = cluster.cli("submit", str(breaking), "--breaking", "--wait", "--quiet", timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr + cluster.logs()
    verify_store(cluster, "tin-nong")
    broker = redis_client.Redis.from_url(redis_server.url)
    assert broker.llen("io") == 1, "routine work waits for routine workers"
    assert not cluster.storage().exists("stories/luu-tru/manifest.json")


def test_editors_get_presigned_urls_and_can_pull_a_preset(cluster: Cluster, tmp_path: Path) -> None:
    story = small_story(tmp_path / "story", "bien-tap", clip_seconds=2, photos=1)
    cluster.worker(concurrency=2).wait_ready()
    done = cluster.cli("submit", str(story), "--wait", "--quiet", timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr + cluster.logs()

    signed = cluster.cli("manifest", "bien-tap", "--presign", "--expires", "600")
    assert signed.returncode == 0, signed.stderr
    document = json.loads(signed.stdout)
    endpoint = cluster.env["STORYMEDIA_S3_ENDPOINT_URL"]
    renditions = [r for a in document["assets"] for r in a["renditions"]]
    for rendition in renditions:
        assert rendition["url"].startswith(endpoint) and "X-Amz-Signature=" in rendition["url"]
    picked = renditions[0]
    with urllib.request.urlopen(picked["url"], timeout=30) as response:
        assert hashlib.sha256(response.read()).hexdigest() == picked["sha256"]
    plain = json.loads(cluster.cli("manifest", "bien-tap").stdout)
    assert plain["assets"][0]["renditions"][0]["url"] == plain["assets"][0]["renditions"][0]["key"]

    dest = tmp_path / "pulled"
    pulled = cluster.cli("pull", "bien-tap", "--preset", "web", "--dest", str(dest))
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    wanted = {k: v for k, v in objects(plain).items() if k.startswith("renditions/")}
    files = {p.relative_to(dest).as_posix(): p for p in dest.rglob("*") if p.is_file()}
    assert set(files) == set(wanted)
    for key, path in files.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == wanted[key]
    missing = cluster.cli("pull", "bien-tap", "--preset", "radio", "--dest", str(dest))
    assert missing.returncode == 3 and "has no renditions of preset 'radio'" in missing.stderr


def test_status_of_a_failed_render_shows_the_command_and_log_tail(cluster: Cluster, tmp_path: Path) -> None:
    broken = tmp_path / "ffmpeg-broken"
    broken.write_text("#!/bin/sh\n"
                      'for a in "$@"; do if [ "$a" = "-progress" ]; then\n'
                      '  echo "[libx264 @ 0x5581] the encoder hit a wall" >&2\n'
                      '  echo "Conversion failed!" >&2; exit 1; fi; done\n'
                      'exec ffmpeg "$@"\n')
    broken.chmod(0o755)
    story = small_story(tmp_path / "story", "hong-may", clip_seconds=2, photos=1)
    cluster.worker(concurrency=2, STORYMEDIA_FFMPEG=str(broken)).wait_ready()
    done = cluster.cli("submit", str(story), "--wait", "--quiet", timeout=180)
    assert done.returncode == 2, done.stdout + done.stderr
    job = job_of(done)
    shown = cluster.cli("status", job)
    assert shown.returncode == 2
    assert "ffmpeg failed: Conversion failed!" in shown.stdout
    assert "the failing command" in shown.stdout and "-progress pipe:1" in shown.stdout
    assert "the encoder hit a wall" in shown.stdout
    by_story = cluster.cli("status", "hong-may")
    assert by_story.returncode == 2 and job in by_story.stdout
    state = cluster.status(job)
    clip = next(row for row in state["assets"] if row["file"].endswith("clip.mp4"))
    assert clip["state"] == "failed" and clip["attempts"] == 1, "bad output is not retried"
    verify_store(cluster, "hong-may", status="partial")


def test_a_worker_refuses_a_visibility_timeout_below_the_time_limit(tmp_path: Path) -> None:
    env = {**os.environ, "STORYMEDIA_BROKER_URL": "redis://127.0.0.1:1/0",
           "STORYMEDIA_TIME_LIMIT": "600", "STORYMEDIA_SOFT_TIME_LIMIT": "500",
           "STORYMEDIA_VISIBILITY_TIMEOUT": "300", "STORYMEDIA_SCRATCH": str(tmp_path)}
    exe = str(Path(sys.executable).with_name("storymedia"))
    ours = subprocess.run([exe, "worker"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert ours.returncode == 3
    assert "STORYMEDIA_VISIBILITY_TIMEOUT (300 s) must be above STORYMEDIA_TIME_LIMIT (600 s)" in ours.stderr
    plain = subprocess.run([sys.executable, "-m", "celery", "--app", "workers.app", "worker"], env=env,
                           capture_output=True, text=True, timeout=60, check=False)
    assert plain.returncode == 78, plain.stdout + plain.stderr
    assert "refusing to start" in plain.stderr


def test_status_without_a_broker_still_answers_from_the_store(cluster: Cluster, tmp_path: Path,
                                                             redis_server: Any) -> None:
    story = small_story(tmp_path / "story", "mat-dien", clip_seconds=2, photos=1)
    cluster.worker(concurrency=2).wait_ready()
    done = cluster.cli("submit", str(story), "--wait", "--quiet", timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    job = job_of(done)
    redis_server.stop()
    started = time.monotonic()
    shown = cluster.cli("status", "mat-dien", timeout=60)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert job in shown.stdout and "Status: complete" in shown.stdout
    assert time.monotonic() - started < 30
    refused = cluster.cli("submit", str(story), timeout=60)
    assert refused.returncode == 3 and "cannot reach the broker" in refused.stderr, refused.stderr
    wait_for(lambda: True, 1, "nothing")
