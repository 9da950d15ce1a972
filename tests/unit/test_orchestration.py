"""The orchestration's decisions, on memory storage: what is left of a job, when and how its manifest
is written, what a re-run and a cancel mean, and the one event type every executor reports."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from pipeline.errors import InvalidPreset, PipelineError
from pipeline.model import manifest
from pipeline.model.keys import asset_id
from pipeline.model.story import parse_story
from pipeline.run import jobs, orchestration
from pipeline.run.asset import AssetOutcome
from pipeline.run.orchestration import JobEvent, asset_event, job_event
from pipeline.storage import MemoryStorage

STORY = parse_story({
    "story": {"id": "s-2023", "title": "Thành phố Thanh Hóa", "byline": "Đình Hà",
              "published": "2023-09-12T21:15:00+07:00", "source": "PCTN"},
    "assets": [{"file": "a.jpg"}, {"file": "clip.mp4"}, {"file": "b.jpg"}]})
EARLY, LATE = "20261128-021800-aaaaaa", "20261128-021900-bbbbbb"


def job(job_id: str = EARLY) -> jobs.Job:
    sizes = (10, 5000, 300)   # the clip is the biggest raw file
    return jobs.Job(id=job_id, story=STORY, presets={"web": "web@1"}, fingerprint="f" * 64,
                    submitted_at="", breaking=False,
                    assets=tuple(jobs.JobAsset(order=i + 1, file=a.file, sha256=f"{i + 1}" * 64, bytes=size)
                                 for i, (a, size) in enumerate(zip(STORY.assets, sizes, strict=True))))


def entry(order: int, public: MemoryStorage, caption: str = "") -> dict:
    """A done asset entry whose one rendition is stored in ``public``."""
    data = f"rendition of asset {order}".encode()
    key = f"renditions/{order:016x}/web@1/w320-{order:08x}.jpg"
    public.put_bytes(key, data, content_type="image/jpeg")
    return {"id": f"{order:016x}", "kind": "image", "order": order, "filename": f"{order}.jpg",
            "source": {"sha256": "1" * 64, "bytes": 5}, "caption": caption, "credit": "", "copyright": "",
            "status": "done",
            "renditions": [{"preset": "web@1", "name": "w320", "key": key, "url": key, "mime": "image/jpeg",
                            "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                            "width": 320, "height": 200}]}


def record(private: MemoryStorage, the_job: jobs.Job, order: int, the_entry: dict) -> None:
    jobs.write_asset_result(private, the_job.story_id, the_job.id,
                            jobs.AssetResult(order=order, entry=the_entry))


def all_recorded(public: MemoryStorage, private: MemoryStorage, the_job: jobs.Job, caption: str = "") -> None:
    for order in (1, 2, 3):
        record(private, the_job, order, entry(order, public, caption))


def test_work_goes_biggest_raw_first_and_skips_what_is_recorded() -> None:
    public, private = MemoryStorage(), MemoryStorage()
    the_job = job()
    assert orchestration.work_order(the_job) == [2, 3, 1]
    assert orchestration.to_do(private, the_job) == [2, 3, 1]
    record(private, the_job, 3, entry(3, public))
    assert orchestration.to_do(private, the_job) == [2, 1]
    assert not orchestration.manifest_due(private, the_job)
    assert orchestration.may_start(private, the_job, 1) and not orchestration.may_start(private, the_job, 3)


def test_the_manifest_waits_for_every_asset_then_is_written_once() -> None:
    public, private = MemoryStorage(), MemoryStorage()
    the_job = job()
    record(private, the_job, 1, entry(1, public))
    waiting = orchestration.finish(public, private, the_job)
    assert (waiting.status, waiting.waiting) == ("", (2, 3))
    assert list(public.list("stories/")) == [], "no manifest before every asset is recorded"

    all_recorded(public, private, the_job)
    assert orchestration.manifest_due(private, the_job)
    finished = orchestration.finish(public, private, the_job)
    assert (finished.status, finished.version, finished.superseded) == ("complete", 1, False)
    assert finished.written is not None and finished.written.document["job"] == EARLY
    assert manifest.read_current(public, "s-2023")["assets"] == [
        jobs.read_asset_result(private, "s-2023", EARLY, order).entry for order in (1, 2, 3)]
    assert jobs.read_done(private, "s-2023", EARLY)["manifest_version"] == 1
    again = orchestration.finish(public, private, the_job)
    assert (again.status, again.already, again.version) == ("complete", True, 1)
    assert manifest.versions(public, "s-2023") == [1]


@pytest.mark.parametrize("damage", [
    lambda public, key: public.delete(key),
    lambda public, key: public.replace(key, b"damaged", content_type="image/jpeg"),
])
def test_a_missing_or_damaged_object_sends_its_asset_round_again(damage) -> None:
    public, private = MemoryStorage(), MemoryStorage()
    the_job = job()
    all_recorded(public, private, the_job)
    damage(public, entry(2, MemoryStorage())["renditions"][0]["key"])
    finished = orchestration.finish(public, private, the_job)
    assert (finished.status, finished.damaged) == ("", (2,))
    assert "assets 2 do not check out" in finished.reason
    assert manifest.read_current(public, "s-2023") is None and jobs.read_done(private, "s-2023", EARLY) is None
    orchestration.render_again(private, the_job, finished.damaged)
    assert orchestration.to_do(private, the_job) == [2]


def test_a_later_jobs_manifest_is_kept() -> None:
    public, private = MemoryStorage(), MemoryStorage()
    late = job(LATE)
    all_recorded(public, private, late, caption="newer")
    assert orchestration.finish(public, private, late).version == 1
    early = job(EARLY)
    all_recorded(public, private, early, caption="older")
    finished = orchestration.finish(public, private, early)
    assert (finished.status, finished.version, finished.superseded, finished.written) == ("complete", 1, True, None)
    assert manifest.read_current(public, "s-2023")["job"] == LATE
    assert jobs.read_done(private, "s-2023", EARLY)["superseded"] is True


def test_a_canceled_job_starts_nothing_keeps_the_manifest_and_ends_canceled() -> None:
    public, private = MemoryStorage(), MemoryStorage()
    first = job(EARLY)
    all_recorded(public, private, first)
    orchestration.finish(public, private, first)
    published = public.get_bytes("stories/s-2023/manifest.json")

    second = job(LATE)
    record(private, second, 2, entry(2, public, caption="changed"))     # started before the cancel
    assert orchestration.cancel(private, "s-2023", LATE, "the editor pulled it")
    assert orchestration.to_do(private, second) == [] and not orchestration.may_start(private, second, 1)
    assert orchestration.manifest_due(private, second)
    finished = orchestration.finish(public, private, second)
    assert (finished.status, finished.version, finished.reason) == ("canceled", 1, "the editor pulled it")
    assert public.get_bytes("stories/s-2023/manifest.json") == published
    assert manifest.versions(public, "s-2023") == [1]
    done = jobs.read_done(private, "s-2023", LATE)
    assert (done["status"], done["manifest_version"]) == ("canceled", 1)
    assert list(jobs.unfinished_jobs(private)) == []
    assert not orchestration.cancel(private, "s-2023", LATE), "a finished job cannot be canceled"


def test_a_rerun_reopens_the_job_and_writes_the_next_version() -> None:
    public, private = MemoryStorage(), MemoryStorage()
    the_job = job()
    all_recorded(public, private, the_job)
    assert orchestration.finish(public, private, the_job).version == 1
    orchestration.rerun(private, the_job, [3])
    assert jobs.read_done(private, "s-2023", EARLY) is None
    assert orchestration.to_do(private, the_job) == [3]
    record(private, the_job, 3, entry(3, public, caption="sửa lại"))
    finished = orchestration.finish(public, private, the_job)
    assert (finished.status, finished.version) == ("complete", 2)

    orchestration.cancel(private, "s-2023", LATE)
    late = job(LATE)
    assert orchestration.finish(public, private, late).status == "canceled"
    orchestration.rerun(private, late, [])
    assert not orchestration.is_canceled(private, "s-2023", LATE), "a re-run of a canceled job runs it"
    assert orchestration.to_do(private, late) == [2, 3, 1]


def test_a_lost_sprite_sheet_sends_its_clip_round_again() -> None:
    """Every object a rendition names is checked, not only its main file."""
    public, private = MemoryStorage(), MemoryStorage()
    the_job = job()
    prefix = "renditions/" + "2" * 16 + "/web@1/"

    def stored(name: str) -> dict:
        data = name.encode()
        public.put_bytes(prefix + name, data, content_type="application/octet-stream")
        return {"key": prefix + name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    sprite = {"preset": "web@1", "name": "thumbnails", "url": "t.vtt", "mime": "text/vtt",
              **stored("thumbnails.vtt"), "width": 160, "height": 90, "thumbnails": 7, "interval": 2,
              "sheets": [stored("sprite-000.jpg"), stored("sprite-001.jpg")]}
    clip = {**entry(2, public), "renditions": [sprite]}
    for order in (1, 3):
        record(private, the_job, order, entry(order, public))
    record(private, the_job, 2, clip)
    public.delete(prefix + "sprite-001.jpg")
    assert orchestration.finish(public, private, the_job).damaged == (2,)


def test_events_map_stages_onto_the_asset_states() -> None:
    assert [asset_event("j", "s", 1, stage).state for stage in
            ("queued", "probing", "rendering", "storing", "done", "failed", "canceled")] == [
        "pending", "probing", "rendering", "storing", "done", "failed", "canceled"]
    event = asset_event("j", "s", 2, "rendering", 3, 10, attempts=2, worker="w1")
    assert event == JobEvent("j", "s", 2, "rendering", 3, 10, "", 2, "w1") and not event.about_job
    assert job_event("j", "s", "canceled", "pulled").about_job
    assert job_event("j", "s", orchestration.STALLED).state == "stalled"
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.state = "done"  # type: ignore[misc]
    with pytest.raises(ValueError, match="unknown asset stage"):
        asset_event("j", "s", 1, "transcoding")
    with pytest.raises(ValueError, match="unknown job state"):
        job_event("j", "s", "done")
    with pytest.raises(ValueError, match="not 1 or more"):
        asset_event("j", "s", 0, "done")
    assert json.dumps(dataclasses.asdict(event))   # small and JSON-able: it travels through Redis


def test_a_rerun_forces_the_next_version_even_when_nothing_changed_and_counts_executions() -> None:
    public, private = MemoryStorage(), MemoryStorage()
    the_job = job()
    all_recorded(public, private, the_job)
    assert orchestration.finish(public, private, the_job).version == 1
    before = manifest.read_current(public, "s-2023")

    made = orchestration.rerun(private, the_job, [3], preset="web")
    assert [(m.order, m.preset, m.previous_attempts) for m in made] == [(3, "web", 1)]
    assert orchestration.reruns(private, the_job) == [3]
    assert orchestration.to_do(private, the_job) == [3]
    outcome = AssetOutcome(entry=entry(3, public), rendered=1)       # the same bytes again
    result = orchestration.record_outcome(private, the_job, 3, outcome)
    assert result.attempts == 2, "the asset's executions in the job: the first run and the re-run"
    finished = orchestration.finish(public, private, the_job)
    assert (finished.status, finished.version) == ("complete", 2)
    assert manifest.versions(public, "s-2023") == [1, 2]
    after = manifest.read_current(public, "s-2023")
    assert manifest.same_content(before, after) and after["version"] == 2
    assert orchestration.reruns(private, the_job) == [], "the markers go once the job is finished"
    assert list(private.list(f"stories/s-2023/jobs/{EARLY}/rerun/")) == []

    orchestration.rerun(private, the_job, [])                        # nothing asked: nothing forced
    assert orchestration.finish(public, private, the_job).version == 2


def test_a_rerun_drops_only_the_assets_renditions_of_its_preset_from_what_may_be_reused() -> None:
    public, private = MemoryStorage(), MemoryStorage()
    the_job = job()
    all_recorded(public, private, the_job)
    orchestration.finish(public, private, the_job)
    mine = "renditions/" + asset_id("3" * 64)
    known = {
        f"{mine}/web@1/w320.jpg": {"preset": "web@1"},
        f"{mine}/social@1/s1080.jpg": {"preset": "social@1"},
        "renditions/" + asset_id("1" * 64) + "/web@1/w320.jpg": {"preset": "web@1"},
    }
    assert orchestration.reusable(private, the_job, 3, known) == known, "no re-run: everything"
    orchestration.rerun(private, the_job, [3], preset="web")
    assert set(orchestration.reusable(private, the_job, 3, known)) == set(known) - {f"{mine}/web@1/w320.jpg"}
    assert orchestration.reusable(private, the_job, 1, known) == known, "other assets reuse as before"
    orchestration.finish(public, private, the_job)   # (asset 3 not recorded: waiting)
    record(private, the_job, 3, entry(3, public))
    orchestration.finish(public, private, the_job)
    orchestration.rerun(private, the_job, [3])
    assert set(orchestration.reusable(private, the_job, 3, known)) == {
        "renditions/" + asset_id("1" * 64) + "/web@1/w320.jpg"}, "all presets: none of its own"


def test_a_rerun_is_refused_while_the_job_runs_for_a_later_job_and_for_bad_input() -> None:
    public, private = MemoryStorage(), MemoryStorage()
    the_job = job()
    with pytest.raises(orchestration.RerunRefused, match="still running"):
        orchestration.rerun(private, the_job, [1])
    all_recorded(public, private, the_job)
    orchestration.finish(public, private, the_job)
    with pytest.raises(PipelineError, match="has 3 assets: there is no asset 4"):
        orchestration.rerun(private, the_job, [4])
    with pytest.raises(InvalidPreset, match="not rendered with preset 'radio'"):
        orchestration.rerun(private, the_job, [1], preset="radio")
    assert orchestration.reruns(private, the_job) == [] and jobs.read_done(private, "s-2023", EARLY)

    later = job(LATE)
    private.replace(later.key, b"{}", content_type="application/json")   # a later job of the story
    with pytest.raises(orchestration.RerunRefused, match=f"later job of the story \\({LATE}\\)"):
        orchestration.rerun(private, the_job, [1])
    orchestration.cancel(private, "s-2023", LATE)
    orchestration.finish(public, private, later)
    orchestration.rerun(private, the_job, [1])    # the later one was canceled: this one stands
    assert orchestration.to_do(private, the_job) == [1]


def test_a_canceled_rerun_clears_its_markers_and_keeps_the_manifest() -> None:
    public, private = MemoryStorage(), MemoryStorage()
    the_job = job()
    all_recorded(public, private, the_job)
    orchestration.finish(public, private, the_job)
    orchestration.rerun(private, the_job, [2])
    orchestration.cancel(private, "s-2023", EARLY)
    finished = orchestration.finish(public, private, the_job)
    assert (finished.status, finished.version) == ("canceled", 1)
    assert orchestration.reruns(private, the_job) == [] and manifest.versions(public, "s-2023") == [1]
