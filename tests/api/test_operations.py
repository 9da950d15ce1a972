"""Re-run one asset and cancel a running clip, in the embedded service and from the command line:
manifest versions, executions per asset, ffmpeg stopped, nothing half-stored, the manifest kept."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from fastapi.testclient import TestClient

from api import records
from pipeline.model import manifest
from pipeline.model.keys import asset_id
from pipeline.run import jobs
from pipeline.run.originals import store_original
from pipeline.storage import LocalStorage, file_sha256
from tests import clips
from tests.api.harness import Service
from tests.conftest import run_cli
from tests.fixtures import photo

STORY = "van-hanh-thu-nghiem"
PHOTOS = ["media/anh-01.jpg", "media/anh-02.jpg"]
CLIP = "media/clip.mp4"


def media(root: Path, clip_seconds: float | None = None, clip_size: str = "640x360") -> Path:
    (root / "media").mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(PHOTOS):
        photo((1800, 1200), seed=index).save(root / name, quality=90)
    if clip_seconds is not None:
        clips.phone_clip(root / CLIP, seconds=clip_seconds, size=clip_size)
    return root


def story_json(files: list[str]) -> dict[str, Any]:
    return {"story": {"id": STORY, "title": "Thử nghiệm vận hành", "byline": "Đình Hà",
                      "published": "2023-09-12T21:15:00+07:00", "source": "Phòng chống tham nhũng",
                      "presets": ["web"]},
            "assets": [{"file": name, "caption": f"Ảnh {index + 1}: hội nghị", "credit": "Đức Anh"}
                       for index, name in enumerate(files)]}


def story_toml(root: Path, files: list[str], story_id: str = STORY) -> Path:
    assets = "".join(f'[[assets]]\nfile = "{name}"\ncaption = "Tệp {index + 1}"\n\n'
                     for index, name in enumerate(files))
    path = root / "story.toml"
    path.write_text(f'[story]\nid = "{story_id}"\ntitle = "Thử nghiệm vận hành"\nbyline = "Đình Hà"\n'
                    'published = 2023-09-12T21:15:00+07:00\nsource = "PCTN"\npresets = ["web"]\n\n' + assets,
                    encoding="utf-8")
    return path


def areas(service: Service) -> tuple[LocalStorage, LocalStorage]:
    return LocalStorage(service.config.data / "public"), LocalStorage(service.config.data / "private")


def submit(client: TestClient, service: Service, root: Path, files: list[str]) -> str:
    """The story created (or replaced) over HTTP, its raws attached, submitted: the job id."""
    created = client.post("/v1/stories", json=story_json(files), headers=service.auth("producer"))
    assert created.status_code in (200, 201), created.text
    private = areas(service)[1]
    for name in files:
        raw = store_original(private, root, name, name)
        records.attach(private, STORY, name, raw.sha256, raw.bytes)
    submitted = client.post(f"/v1/stories/{STORY}/jobs", headers=service.auth("producer"))
    assert submitted.status_code == 202, submitted.text
    return str(submitted.json()["id"])


def job_status(client: TestClient, service: Service, job: str) -> dict[str, Any]:
    response = client.get(f"/v1/jobs/{job}", headers=service.auth("operator"))
    assert response.status_code == 200, response.text
    loaded: dict[str, Any] = response.json()
    return loaded


def wait_final(client: TestClient, service: Service, job: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = job_status(client, service, job)
        if state["final"]:
            return state
        time.sleep(0.2)
    raise AssertionError(f"job {job} did not finish in {timeout:.0f} s: {job_status(client, service, job)}")


def wait_for(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def encoding_ffmpeg(root: psutil.Process) -> list[psutil.Process]:
    """The ffmpeg processes below ``root`` that encode (run with ``-progress``, not a measurement)."""
    found = []
    for child in root.children(recursive=True):
        try:
            if child.name() == "ffmpeg" and "-progress" in child.cmdline():
                found.append(child)
        except psutil.Error:
            continue
    return found


def any_ffmpeg(root: psutil.Process) -> list[psutil.Process]:
    found = []
    for child in root.children(recursive=True):
        try:
            if child.name() == "ffmpeg" and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.Error:
            continue
    return found


def result_files(private: LocalStorage, job: str) -> dict[int, bytes]:
    folder = private.root / "stories" / STORY / "jobs" / job / "assets"
    return {int(path.stem): path.read_bytes() for path in sorted(folder.glob("*.json"))}


def nothing_half_stored(data: Path, public: LocalStorage, private: LocalStorage) -> None:
    """No temporary file anywhere; every object under renditions/ is named, with its SHA-256, by a
    manifest version or by a recorded asset result (complete and verified), and checks out."""
    assert [p for p in data.rglob(".tmp-*")] == [], "a write left its temporary file"
    named: dict[str, str] = {}
    for version in manifest.versions(public, STORY):
        document = manifest.read(public, f"stories/{STORY}/manifest.v{version}.json")
        named.update({o.key: o.sha256 for o in manifest.objects(document["assets"])})
    for job in jobs.story_jobs(private, STORY):
        for result in jobs.read_asset_results(private, STORY, job).values():
            named.update({o.key: o.sha256 for o in manifest.objects([result.entry])})
    for key in public.list("renditions/"):
        assert key in named, f"{key} is stored but no manifest or result names it"
        assert hashlib.sha256(public.get_bytes(key)).hexdigest() == named[key], key


def test_rerun_of_one_asset_renders_only_it_again_and_the_manifest_goes_to_the_next_version(
        client: TestClient, service: Service, tmp_path: Path) -> None:
    root = media(tmp_path / "story", clip_seconds=2)
    job = submit(client, service, root, [*PHOTOS, CLIP])
    assert wait_final(client, service, job)["state"] == "complete"
    public, private = areas(service)
    before = result_files(private, job)
    first = json.loads(public.get_bytes(f"stories/{STORY}/manifest.json"))
    url = f"/v1/jobs/{job}/assets/1/rerun"

    assert client.post(url, json={"preset": "web"}, headers=service.auth("producer")).status_code == 403
    refused = client.post(url, json={"preset": "radio"}, headers=service.auth("operator"))
    assert refused.status_code == 422 and refused.json()["errors"][0]["path"] == "preset", refused.text
    assert client.post(f"/v1/jobs/{job}/assets/9/rerun", headers=service.auth("operator")).status_code == 404
    assert result_files(private, job) == before and manifest.versions(public, STORY) == [1]

    accepted = client.post(url, json={"preset": "web"}, headers=service.auth("operator"))
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["done"] is True
    busy = client.post(f"/v1/jobs/{job}/assets/2/rerun", headers=service.auth("operator"))
    assert busy.status_code == 409 and busy.json()["code"] == "conflict", busy.text

    state = wait_final(client, service, job)
    assert (state["state"], state["manifest_version"]) == ("complete", 2)
    assert [a["attempts"] for a in state["assets"]] == [2, 1, 1], "executions per asset"
    assert manifest.versions(public, STORY) == [1, 2]
    second = json.loads(public.get_bytes(f"stories/{STORY}/manifest.json"))
    assert second["version"] == 2 and second["job"] == job
    made = [[(r["name"], r["sha256"], r["key"]) for r in doc["assets"][0]["renditions"]] for doc in (first, second)]
    assert [r[:2] for r in made[0]] == [r[:2] for r in made[1]], "the same bytes again: a new version all the same"
    assert {r[2] for r in made[0]}.isdisjoint(r[2] for r in made[1]), "on keys of their own (tests/api/test_rerun_keys)"
    assert second["assets"][1:] == first["assets"][1:]

    after = result_files(private, job)
    assert after[2] == before[2] and after[3] == before[3], "the other assets were not executed again"
    again = jobs.read_asset_result(private, STORY, job, 1)
    assert again is not None and again.attempts == 2
    assert again.rendered == len(again.entry["renditions"]) > 0 and again.reused == 0
    assert not (private.root / "stories" / STORY / "jobs" / job / "rerun").exists() or not any(
        (private.root / "stories" / STORY / "jobs" / job / "rerun").iterdir()), "markers cleared"
    nothing_half_stored(service.config.data, public, private)


def test_cancel_during_a_clip_render_stops_ffmpeg_and_keeps_the_manifest(
        client: TestClient, service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))     # the pool's processes make their scratch here
    root = media(tmp_path / "story", clip_seconds=20, clip_size="1280x720")
    first = submit(client, service, root, PHOTOS)
    assert wait_final(client, service, first)["state"] == "complete"
    public, private = areas(service)
    published = public.get_bytes(f"stories/{STORY}/manifest.json")

    job = submit(client, service, root, [*PHOTOS, CLIP])
    me = psutil.Process()
    wait_for(lambda: encoding_ffmpeg(me), 120, "the clip's ffmpeg to run")
    assert job_status(client, service, job)["assets"][2]["state"] == "rendering"
    canceled = client.post(f"/v1/jobs/{job}/cancel", headers=service.auth("operator"))
    assert canceled.status_code == 202 and canceled.json()["done"] is True, canceled.text
    stopped_at = time.monotonic()

    state = wait_final(client, service, job, timeout=60)
    assert state["state"] == "canceled"
    assert [a["state"] for a in state["assets"]] == ["done", "done", "canceled"]
    wait_for(lambda: not any_ffmpeg(me), 10, "ffmpeg to be gone")
    assert time.monotonic() - stopped_at < 15
    assert public.get_bytes(f"stories/{STORY}/manifest.json") == published
    assert manifest.versions(public, STORY) == [1]
    clip_id = asset_id(file_sha256(root / CLIP))
    assert list(public.list(f"renditions/{clip_id}/")) == [], "nothing of the clip was stored"
    nothing_half_stored(service.config.data, public, private)
    assert [p.name for p in scratch.iterdir() if p.name.startswith("storymedia-")] == [], "scratch left"

    again = client.post(f"/v1/jobs/{job}/cancel", headers=service.auth("operator"))
    assert again.status_code == 200 and again.json()["done"] is False, again.text
    assert "canceled" in again.json()["detail"]
    assert client.get(f"/v1/stories/{STORY}", headers=service.auth("producer")).json()["state"] == "canceled"
    assert client.post(f"/v1/jobs/{job}/cancel", headers=service.auth("producer")).status_code == 403


def test_the_command_line_reruns_an_asset_here_and_cancels_a_run_on_the_same_folder(tmp_path: Path) -> None:
    root = media(tmp_path / "story", clip_seconds=20, clip_size="1280x720")
    out = tmp_path / "out"
    photos = story_toml(root, PHOTOS)
    assert run_cli("run", str(photos), "--out", str(out), "--quiet").returncode == 0
    public, private = LocalStorage(out / "public"), LocalStorage(out / "private")
    job = jobs.story_jobs(private, STORY)[-1]

    done = run_cli("rerun", STORY, "2", "--out", str(out), "--preset", "web", "--quiet")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Manifest v2 written" in done.stdout and "Status: complete" in done.stdout, done.stdout
    assert manifest.versions(public, STORY) == [1, 2]
    assert [r.attempts for r in jobs.read_asset_results(private, STORY, job).values()] == [1, 2]

    wrong = run_cli("rerun", job, "2", "--out", str(out), "--preset", "radio")
    assert wrong.returncode == 1 and "not rendered with preset 'radio'" in wrong.stderr, wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1 and "Traceback" not in wrong.stderr
    missing = run_cli("cancel", "khong-co-bai-nay", "--out", str(out))
    assert missing.returncode == 3 and "no story or job called" in missing.stderr, missing.stderr
    finished = run_cli("cancel", job, "--out", str(out))
    assert finished.returncode == 0 and "had already finished (complete)" in finished.stdout, finished.stdout

    # a run of the story with the clip, canceled from another command while ffmpeg encodes
    story = story_toml(root, [*PHOTOS, CLIP])
    running = subprocess.Popen([str(Path(sys.executable).with_name("storymedia")), "run", str(story),
                                "--out", str(out), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
                               start_new_session=True)
    try:
        command = psutil.Process(running.pid)
        wait_for(lambda: encoding_ffmpeg(command), 120, "the clip's ffmpeg to run")
        published = public.get_bytes(f"stories/{STORY}/manifest.json")
        said = run_cli("cancel", STORY, "--out", str(out))
        assert said.returncode == 0 and "is being canceled" in said.stdout, said.stdout + said.stderr
        stdout, stderr = running.communicate(timeout=60)
    finally:
        if running.poll() is None:
            os.killpg(running.pid, signal.SIGKILL)
            running.communicate()
    assert running.returncode == 2 and "Status: canceled" in stdout, stdout + stderr
    assert public.get_bytes(f"stories/{STORY}/manifest.json") == published
    assert manifest.versions(public, STORY) == [1, 2]
    latest = jobs.story_jobs(private, STORY)[-1]
    assert jobs.read_done(private, STORY, latest)["status"] == "canceled"
    nothing_half_stored(out, public, private)
    assert not [p for p in psutil.process_iter(["name", "cmdline"])
                if p.info["name"] == "ffmpeg" and str(root / CLIP) in " ".join(p.info["cmdline"] or [])]
