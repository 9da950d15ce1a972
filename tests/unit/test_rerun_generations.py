"""A re-run renders on keys of its own: its generation is part of the spec material of the re-run
preset's renditions (plans, pure); the orchestration records each re-run's generation so later jobs
plan under it again and reuse what the manifest names (memory storage)."""

from __future__ import annotations

import hashlib
import json
from fractions import Fraction
from pathlib import Path

import pytest

from pipeline.ingest.info import AudioStream, AVInfo, ImageInfo, VideoStream
from pipeline.model.embedded_text import EmbeddedText
from pipeline.model.story import parse_story
from pipeline.plan.image import plan_image
from pipeline.plan.video import plan_video
from pipeline.run import jobs, orchestration
from pipeline.run.asset import AssetWork, generations_in_force
from pipeline.storage import MemoryStorage

SHA = "ab" * 32
TEXT = EmbeddedText(caption="Bà Lê Thị Minh Tâm", byline="Đình Hà", credit="Đình Hà")
PHOTO = ImageInfo(format="JPEG", mime="image/jpeg", width=6000, height=4000, stored_width=6000,
                  stored_height=4000, orientation=1, mode="RGB", bytes=1000)
_RATE = Fraction(25)
CLIP = AVInfo(kind="video", container="mp4", demuxer="mov", mime="video/mp4", bytes=1, duration=10.0,
              video=VideoStream(codec="h264", profile="High", pix_fmt="yuv420p", bit_depth=8, width=1920,
                                height=1080, coded_width=1920, coded_height=1080, rotation=0, sar=(1, 1),
                                fps=_RATE, avg_fps=_RATE, vfr=False, field_order="progressive",
                                duration=10.0),
              audio=AudioStream(codec="aac", channels=2, layout="stereo", sample_rate=48000))

GOLDEN = {
    # computed by the planning code before generations existed: keys without one never change
    "renditions/abababababababab/broadcast@1/still-1080-f041b3ab.jpg",
    "renditions/abababababababab/web@1/w1024-41fd9c90.jpg",
    "renditions/abababababababab/web@1/w320-eac2934f.webp",
    "renditions/abababababababab/radio@1/mp3-128-026a021e.mp3",
    "renditions/abababababababab/web@1/hls-3d90f9a3/master.m3u8",
    "renditions/abababababababab/web@1/mp4-1080-2e06a504.mp4",
    "renditions/abababababababab/web@1/sprite-33dfca1f/thumbnails.vtt",
}


def image_keys(presets, generations=None) -> dict[tuple[str, str], str]:
    plans = plan_image(PHOTO, SHA, [presets["web"], presets["broadcast"]], TEXT, generations=generations)
    return {(p.preset, p.name + "." + p.extension): p.key for p in plans}


def clip_keys(presets, generations=None) -> dict[tuple[str, str], str]:
    plan = plan_video(CLIP, SHA, [presets["web"], presets["radio"]], TEXT, generations=generations)
    return {(p.preset, p.name): p.key for p in plan.everything}


@pytest.mark.parametrize("none", [None, {}, {"web": "", "broadcast": "", "radio": ""}])
def test_without_a_generation_every_key_is_the_key_of_the_spec_alone(presets, none) -> None:
    keys = set(image_keys(presets, none).values()) | set(clip_keys(presets, none).values())
    assert keys >= GOLDEN, sorted(GOLDEN - keys)
    assert image_keys(presets, none) == image_keys(presets) and clip_keys(presets, none) == clip_keys(presets)


@pytest.mark.parametrize("keys_of", [image_keys, clip_keys])
def test_a_generation_gives_its_presets_renditions_new_keys_and_no_other(presets, keys_of) -> None:
    before = keys_of(presets)
    first = keys_of(presets, {"web": "20261128-021800-aaaaaa.1a2b3c4d"})
    second = keys_of(presets, {"web": "20261128-021800-aaaaaa.5e6f7a8b"})
    assert first.keys() == before.keys() == second.keys()
    for what, key in before.items():
        if what[0] == "web@1":
            assert len({key, first[what], second[what]}) == 3, what
            assert first[what].rsplit("-", 1)[0] == key.rsplit("-", 1)[0], "same place, new spec hash"
        else:
            assert first[what] == second[what] == key, f"{what}: not re-run, same key"
    assert keys_of(presets, {"web": "20261128-021800-aaaaaa.1a2b3c4d"}) == first, "pure: same in, same out"


def work(presets, known: dict, earlier: tuple[str, ...] = (), renew: dict | None = None) -> AssetWork:
    story = parse_story({"story": {"id": "s", "title": "t", "byline": "b", "published": "2023-09-12T21:15:00+07:00",
                                   "source": "s"}, "assets": [{"file": "a.jpg"}]})
    return AssetWork(order=1, path=Path("a.jpg"), asset=story.assets[0], story=story.story,
                     presets=(presets["web"], presets["broadcast"]), known=known,
                     generations=earlier, renew=renew or {})


def test_a_later_job_plans_each_preset_under_the_generation_its_current_renditions_were_made_in(presets) -> None:
    def plan(generations):
        return plan_image(PHOTO, SHA, [presets["web"], presets["broadcast"]], TEXT, generations=generations)

    old, new = "20261128-021800-aaaaaa.00000001", "20261128-021900-bbbbbb.00000002"
    current = {p.key: {} for p in plan({"web": new})}   # web re-run under `new`, broadcast never
    assert generations_in_force(work(presets, current, (old, new)), plan) == {"web": new}
    assert generations_in_force(work(presets, current), plan) == {}, "no earlier generation: the spec's keys"
    assert generations_in_force(work(presets, {}, (old, new)), plan) == {}, "nothing to reuse: the spec's keys"
    assert generations_in_force(work(presets, current, (old, new), {"broadcast": "x.1"}), plan) == {
        "web": new, "broadcast": "x.1"}, "a re-run of broadcast keeps web's reuse"
    assert generations_in_force(work(presets, current, (old, new), {"web": "x.1"}), plan) == {"web": "x.1"}


STORY = parse_story({
    "story": {"id": "s-2023", "title": "Thành phố Thanh Hóa", "byline": "Đình Hà",
              "published": "2023-09-12T21:15:00+07:00", "source": "PCTN", "presets": ["web", "social"]},
    "assets": [{"file": "a.jpg"}, {"file": "b.jpg"}]})
EARLY, LATE = "20261128-021800-aaaaaa", "20261128-021900-bbbbbb"


def job(job_id: str) -> jobs.Job:
    return jobs.Job(id=job_id, story=STORY, presets={"web": "web@1", "social": "social@1"}, fingerprint="f" * 64,
                    submitted_at="", breaking=False,
                    assets=tuple(jobs.JobAsset(order=i + 1, file=a.file, sha256=f"{i + 1}" * 64, bytes=10)
                                 for i, a in enumerate(STORY.assets)))


def finished(private: MemoryStorage, the_job: jobs.Job) -> None:
    for order in (1, 2):
        jobs.write_asset_result(private, the_job.story_id, the_job.id, jobs.AssetResult(order=order, entry={}))
    jobs.mark_done(private, the_job.story_id, the_job.id, "complete", 1)


def test_each_rerun_has_its_own_generation_recorded_for_the_later_jobs_of_the_story() -> None:
    private = MemoryStorage()
    first = job(EARLY)
    assert orchestration.asset_generations(private, first, 1) == orchestration.Generations({}, ())
    finished(private, first)

    [marker] = orchestration.rerun(private, first, [1], preset="web")
    generation = f"{EARLY}.{marker.id}"
    assert orchestration.asset_generations(private, first, 1) == orchestration.Generations(
        {"web": generation}, ()), "asked again (a retry): the same generation"
    assert orchestration.asset_generations(private, first, 2) == orchestration.Generations({}, ())
    finished(private, first)
    private.delete(orchestration.rerun_key("s-2023", EARLY, 1))   # as finish() does

    [again] = orchestration.rerun(private, first, [1])          # every preset of the asset
    assert again.id != marker.id
    renewed = orchestration.asset_generations(private, first, 1)
    assert renewed.renew == dict.fromkeys(["web", "social"], f"{EARLY}.{again.id}")
    assert renewed.earlier == (generation,)
    finished(private, first)
    private.delete(orchestration.rerun_key("s-2023", EARLY, 1))   # as finish() does

    later = job(LATE)
    assert orchestration.asset_generations(private, later, 1) == orchestration.Generations(
        {}, tuple(sorted([generation, f"{EARLY}.{again.id}"])))
    assert orchestration.asset_generations(private, later, 2).earlier == ()


@pytest.mark.parametrize("damage", [b"not json", b'{"id": "../../renditions"}', b"[]"])
def test_a_damaged_marker_still_renders_under_a_generation_of_its_own(damage) -> None:
    private = MemoryStorage()
    the_job = job(EARLY)
    finished(private, the_job)
    orchestration.rerun(private, the_job, [2])
    private.replace(orchestration.rerun_key("s-2023", EARLY, 2), damage, content_type="application/json")
    generations = orchestration.asset_generations(private, the_job, 2)
    expected = f"{EARLY}.damaged-{hashlib.sha256(damage).hexdigest()[:8]}"
    assert generations.renew == {"web": expected, "social": expected}
    [recorded] = [k for k in private.list("stories/s-2023/generations/")]
    assert recorded == f"stories/s-2023/generations/{'2' * 16}/{expected}.json"
    assert json.loads(private.get_bytes(recorded))["job"] == EARLY
