"""Re-run one asset and cancel a running clip on the cluster (real Redis, S3 server and Celery
workers), from the command line: manifest versions, executions per asset, ffmpeg stopped in the
pool process that keeps serving, no incomplete multipart upload, the manifest kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psutil
import pytest

from pipeline.model import manifest
from pipeline.model.keys import asset_id
from pipeline.run import jobs
from pipeline.storage import file_sha256
from tests import clips
from tests.cluster.harness import Cluster, wait_for
from tests.cluster.test_faults import attempts, finish, job_of, wait_rendering_clip
from tests.fixtures import photo

pytestmark = pytest.mark.cluster

STORY = "van-hanh-cum-may"
PHOTOS = ["media/anh-01.jpg", "media/anh-02.jpg"]
CLIP = "media/clip.mp4"


def story_file(root: Path, files: list[str], clip_seconds: float = 3.0, clip_size: str = "640x360") -> Path:
    media = root / "media"
    media.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(PHOTOS):
        if not (root / name).exists():
            photo((1800, 1200), seed=index).save(root / name, quality=90)
    if CLIP in files and not (root / CLIP).exists():
        clips.phone_clip(root / CLIP, seconds=clip_seconds, size=clip_size)
    assets = "".join(f'[[assets]]\nfile = "{name}"\ncaption = "Tệp {index + 1}: hội nghị"\n'
                     'credit = "Đức Anh"\n\n' for index, name in enumerate(files))
    path = root / "story.toml"
    path.write_text(f'[story]\nid = "{STORY}"\ntitle = "Thử nghiệm vận hành"\nbyline = "Đình Hà"\n'
                    'published = 2023-09-12T21:15:00+07:00\nsource = "PCTN"\npresets = ["web"]\n\n' + assets,
                    encoding="utf-8")
    return path


def results(private: Any, job: str) -> dict[int, bytes]:
    return {order: private.get_bytes(jobs.asset_result_key(STORY, job, order))
            for order in sorted(jobs.recorded_orders(private, STORY, job))}


def keys(document: dict[str, Any]) -> dict[int, set[str]]:
    """Every object key each asset's entry names, by its order."""
    return {int(a["order"]): {o.key for o in manifest.objects([a])} for a in document["assets"]}


def nothing_half_stored(running: Cluster) -> None:
    """No incomplete multipart upload; every object under renditions/ is named, with its SHA-256,
    by a manifest version or a recorded asset result, and checks out."""
    public, private = running.storage(), running.storage(private=True)
    assert public.incomplete_uploads() == [] and private.incomplete_uploads() == []
    named: dict[str, str] = {}
    for version in manifest.versions(public, STORY):
        document = manifest.read(public, f"stories/{STORY}/manifest.v{version}.json")
        named.update({o.key: o.sha256 for o in manifest.objects(document["assets"])})
    for job in jobs.story_jobs(private, STORY):
        for result in jobs.read_asset_results(private, STORY, job).values():
            named.update({o.key: o.sha256 for o in manifest.objects([result.entry])})
    for key in public.list("renditions/"):
        assert key in named, f"{key} is stored but no manifest or result names it"
        assert public.exists(key, named[key]), key


def ffmpeg_below(running: Cluster) -> list[psutil.Process]:
    found = []
    for worker in running.workers:
        for child in worker.pool():
            try:
                found += [g for g in child.children(recursive=True)
                          if g.name() == "ffmpeg" and g.status() != psutil.STATUS_ZOMBIE]
            except psutil.Error:
                continue
    return found


def test_rerun_of_one_asset_on_the_cluster_renders_only_it_and_writes_the_next_version(
        cluster: Cluster, tmp_path: Path) -> None:
    story = story_file(tmp_path / "story", [*PHOTOS, CLIP])
    cluster.worker(concurrency=2).wait_ready()
    submitted = cluster.cli("submit", str(story), "--wait", "--quiet", "--timeout", "240")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    job = job_of(submitted)
    public, private = cluster.storage(), cluster.storage(private=True)
    before = results(private, job)
    first = json.loads(public.get_bytes(f"stories/{STORY}/manifest.json"))

    refused = cluster.cli("rerun", job, "1", "--preset", "radio")
    assert refused.returncode == 1 and "not rendered with preset 'radio'" in refused.stderr, refused.stderr
    done = cluster.cli("rerun", job, "1", "--preset", "web", "--wait", "--quiet", "--timeout", "180")
    assert done.returncode == 0, done.stdout + done.stderr + cluster.logs()
    assert "is rendered again with web" in done.stdout
    assert manifest.versions(public, STORY) == [1, 2]
    second = json.loads(public.get_bytes(f"stories/{STORY}/manifest.json"))
    assert second["version"] == 2
    assert keys(second)[1].isdisjoint(keys(first)[1]), "the re-run photo's renditions are on keys of their own"
    assert second["assets"][1:] == first["assets"][1:], "the other assets are as they were"
    after = results(private, job)
    assert after[2] == before[2] and after[3] == before[3], "the other assets were not executed again"
    again = jobs.read_asset_result(private, STORY, job, 1)
    assert again is not None and again.rendered == len(again.entry["renditions"]) > 0 and again.reused == 0
    assert attempts(cluster, job) == {"anh-01.jpg": 2, "anh-02.jpg": 1, "clip.mp4": 1}

    # the clip, all of its presets, from its story id: its attempts are counted per re-run
    clip = cluster.cli("rerun", STORY, "3", "--wait", "--quiet", "--timeout", "180")
    assert clip.returncode == 0, clip.stdout + clip.stderr + cluster.logs()
    assert manifest.versions(public, STORY) == [1, 2, 3]
    assert attempts(cluster, job) == {"anh-01.jpg": 2, "anh-02.jpg": 1, "clip.mp4": 2}
    assert list(private.list(f"stories/{STORY}/jobs/{job}/rerun/")) == [], "the markers are cleared"
    third = json.loads(public.get_bytes(f"stories/{STORY}/manifest.json"))
    assert keys(third)[3].isdisjoint(keys(second)[3]) and keys(third)[1] == keys(second)[1]
    for version in manifest.versions(public, STORY):   # no re-run wrote over what a version names
        named = manifest.objects(manifest.read(public, f"stories/{STORY}/manifest.v{version}.json")["assets"])
        assert named and all(public.exists(o.key, o.sha256) for o in named), f"v{version} checks out"
    nothing_half_stored(cluster)


def test_cancel_during_a_clip_render_on_the_cluster_stops_ffmpeg_and_keeps_the_manifest(
        cluster: Cluster, tmp_path: Path) -> None:
    root = tmp_path / "story"
    worker = cluster.worker(concurrency=2).wait_ready()
    first = cluster.cli("submit", str(story_file(root, PHOTOS)), "--wait", "--quiet", "--timeout", "240")
    assert first.returncode == 0, first.stdout + first.stderr
    public = cluster.storage()
    published = public.get_bytes(f"stories/{STORY}/manifest.json")

    story = story_file(root, [*PHOTOS, CLIP], clip_seconds=20, clip_size="1280x720")
    job = job_of(cluster.cli("submit", str(story)))
    _, child = wait_rendering_clip(cluster, timeout=120)
    said = cluster.cli("cancel", job)
    assert said.returncode == 0 and "is being canceled" in said.stdout, said.stdout + said.stderr

    wait_for(lambda: not ffmpeg_below(cluster), 10, "ffmpeg to be stopped", every=0.1)
    state = finish(cluster, job, timeout=60)
    assert state["state"] == "canceled"
    assert [row["state"] for row in state["assets"]] == ["done", "done", "canceled"], state["assets"]
    assert child.is_running(), "the pool process stopped the render and lives on"
    assert "its render was stopped" in worker.text()
    assert public.get_bytes(f"stories/{STORY}/manifest.json") == published
    assert manifest.versions(public, STORY) == [1]
    clip_id = asset_id(file_sha256(root / CLIP))
    assert list(public.list(f"renditions/{clip_id}/")) == [], "nothing of the clip was stored"
    nothing_half_stored(cluster)

    again = cluster.cli("cancel", STORY)
    assert again.returncode == 0 and "had already finished (canceled)" in again.stdout, again.stdout
