"""Job records, asset results and cluster settings: the pure logic, on a local store."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pipeline.errors import ConfigError, StorageError
from pipeline.model.keys import raw_key
from pipeline.model.story import load_story
from pipeline.run import jobs
from pipeline.storage import LocalStorage
from tests.fixtures import photo
from workers.app import QUEUES, queue
from workers.settings import Settings

STORY = """[story]
id = "thu-nghiem"
title = "Thử nghiệm"
published = 2023-09-12T21:15:00+07:00
presets = ["web"]

[[assets]]
file = "media/a.jpg"
caption = "Ảnh một"

[[assets]]
file = "media/b.jpg"
caption = "Ảnh hai"
"""


@pytest.fixture
def story_file(tmp_path: Path) -> Path:
    (tmp_path / "media").mkdir()
    photo((300, 200), 1).save(tmp_path / "media" / "a.jpg")
    photo((300, 200), 2).save(tmp_path / "media" / "b.jpg")
    path = tmp_path / "story.toml"
    path.write_text(STORY, encoding="utf-8")
    return path


def test_stage_uploads_each_raw_once_then_records_the_job(story_file: Path, tmp_path: Path, presets) -> None:
    storage = LocalStorage(tmp_path / "store")
    story = load_story(story_file, presets)
    seen: list[str] = []
    staged = jobs.stage(story_file, story, presets, storage, lambda name, size: seen.append(name))
    assert staged.uploaded == 2 and seen == ["a.jpg", "b.jpg"]
    for item in staged.assets:
        assert storage.exists(raw_key(item.sha256), item.sha256)
    assert staged.presets == {"web": presets["web"].label}
    again = jobs.stage(story_file, story, presets, storage)
    assert again.uploaded == 0, "raws are content-addressed: stored once"
    assert again.fingerprint == staged.fingerprint

    job = jobs.record(storage, staged, jobs.new_job_id(), breaking=False)
    loaded = jobs.read_job(storage, "thu-nghiem", job.id)
    assert loaded == job
    assert list(jobs.unfinished_jobs(storage)) == [("thu-nghiem", job.id)]
    jobs.mark_done(storage, "thu-nghiem", job.id, "complete", 1)
    assert list(jobs.unfinished_jobs(storage)) == []
    assert jobs.story_jobs(storage, "thu-nghiem") == [job.id]


def test_a_changed_caption_changes_the_fingerprint(story_file: Path, tmp_path: Path, presets) -> None:
    storage = LocalStorage(tmp_path / "store")
    first = jobs.stage(story_file, load_story(story_file, presets), presets, storage)
    story_file.write_text(STORY.replace("Ảnh hai", "Ảnh hai, sửa lại"), encoding="utf-8")
    second = jobs.stage(story_file, load_story(story_file, presets), presets, storage)
    assert first.fingerprint != second.fingerprint


def test_asset_results_round_trip_and_drop(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    result = jobs.AssetResult(order=2, entry={"status": "done", "renditions": []}, attempts=2,
                              diagnostics={"command": ["ffmpeg"], "log_tail": "x"})
    jobs.write_asset_result(storage, "s", "j", result)
    assert jobs.read_asset_result(storage, "s", "j", 2) == result
    assert jobs.read_asset_results(storage, "s", "j") == {2: result}
    jobs.drop_asset_result(storage, "s", "j", 2)
    assert jobs.read_asset_result(storage, "s", "j", 2) is None


def test_fetch_raw_checks_the_checksum_and_caches(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    data = b"raw bytes of a photo"
    sha = hashlib.sha256(data).hexdigest()
    storage.put_bytes(raw_key(sha), data, content_type="image/jpeg")
    cache = tmp_path / "cache"
    path = jobs.fetch_raw(storage, sha, cache)
    assert path.read_bytes() == data
    storage.replace(raw_key(sha), b"tampered", content_type="image/jpeg")
    assert jobs.fetch_raw(storage, sha, cache) == path, "served from the cache"
    path.unlink()
    with pytest.raises(StorageError, match="damaged"):
        jobs.fetch_raw(storage, sha, cache)
    assert [p.name for p in cache.iterdir()] == [], "no partial file left behind"


def test_job_ids_are_time_ordered() -> None:
    older, newer = "20261128-021800-aaaaaa", "20261128-021801-000000"
    assert jobs.later(newer, older) and not jobs.later(older, newer)
    assert not jobs.later("f" * 16, older), "ids of another shape never count as later"
    assert jobs.JOB_ID.fullmatch(jobs.new_job_id())


def test_queues_and_the_breaking_lane() -> None:
    assert queue("video") == "video" and queue("video", breaking=True) == "breaking-video"
    assert len(QUEUES) == 10
    with pytest.raises(ValueError, match="unknown stage"):
        queue("transcode")


def test_settings_refuse_a_visibility_timeout_below_the_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORYMEDIA_TIME_LIMIT", "600")
    monkeypatch.setenv("STORYMEDIA_VISIBILITY_TIMEOUT", "600")
    settings = Settings.from_env()
    assert settings.soft_time_limit == 480
    with pytest.raises(ConfigError, match="must be above"):
        settings.check()
    monkeypatch.setenv("STORYMEDIA_VISIBILITY_TIMEOUT", "900")
    Settings.from_env().check()
    monkeypatch.setenv("STORYMEDIA_SOFT_TIME_LIMIT", "700")
    with pytest.raises(ConfigError, match="must be below"):
        Settings.from_env().check()
    monkeypatch.setenv("STORYMEDIA_TIME_LIMIT", "ten minutes")
    with pytest.raises(ConfigError, match="not a number"):
        Settings.from_env()



def test_recorded_orders_lists_the_assets_with_a_result(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    for order in (1, 3):
        jobs.write_asset_result(storage, "s", "j", jobs.AssetResult(order=order, entry={"status": "done"}))
    storage.put_bytes("stories/s/jobs/j/assets/notes.txt", b"not a result", content_type="text/plain")
    assert jobs.recorded_orders(storage, "s", "j") == {1, 3}
    assert jobs.recorded_orders(storage, "s", "other") == set()


def _recorded(story_file: Path, tmp_path: Path, presets) -> tuple[LocalStorage, jobs.Job]:
    storage = LocalStorage(tmp_path / "store")
    staged = jobs.stage(story_file, load_story(story_file, presets), presets, storage)
    return storage, jobs.record(storage, staged, jobs.new_job_id(), breaking=False)


@pytest.mark.parametrize(("forge", "words"), [
    (lambda d: d["assets"][0].update(sha256="/some/worker/file"), "damaged or forged"),
    (lambda d: d["assets"][0].update(sha256="../" * 20 + "etc/passwd"), "damaged or forged"),
    (lambda d: d["assets"][1].update(order=7), "damaged or forged"),
    (lambda d: d["assets"].append(dict(d["assets"][0])), "do not match its story"),
    (lambda d: d["assets"][0].update(subtitles_sha256="/etc/shadow"), "damaged or forged"),
    (lambda d: d["assets"][0].update(bytes=-1), "damaged or forged"),
    (lambda d: d.update(story_id="other-story"), "does not belong"),
    (lambda d: d["story"]["story"].update(id="other-story"), "does not belong"),
    (lambda d: d.update(job="../../x"), "no valid job id"),
    (lambda d: d["presets"].update(web="../web"), "presets"),
])
def test_a_forged_job_record_is_refused_on_read(story_file: Path, tmp_path: Path, presets, forge,
                                                words: str) -> None:
    import json

    storage, job = _recorded(story_file, tmp_path, presets)
    data = json.loads(storage.get_bytes(job.key))
    forge(data)
    storage.replace(job.key, json.dumps(data).encode(), content_type="application/json")
    with pytest.raises(StorageError, match=words):
        jobs.read_job(storage, "thu-nghiem", job.id)


def test_the_raw_cache_refuses_a_name_that_is_not_a_sha256(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("worker-local file")
    storage = LocalStorage(tmp_path / "store")
    for name in (str(outside), "../secret.txt", "a" * 63 + "/", "A" * 64):
        with pytest.raises(StorageError, match="not a SHA-256"):
            jobs.fetch_raw(storage, name, tmp_path / "cache")


def test_a_forged_asset_result_is_refused(story_file: Path, tmp_path: Path, presets) -> None:
    storage, job = _recorded(story_file, tmp_path, presets)
    key = jobs.asset_result_key("thu-nghiem", job.id, 1)
    storage.replace(key, b'{"order": 2, "entry": {"status": "done", "renditions": []}}',
                    content_type="application/json")
    with pytest.raises(StorageError, match="damaged or forged"):
        jobs.read_asset_result(storage, "thu-nghiem", job.id, 1)


def test_an_asset_result_keeps_its_entrys_key_order(tmp_path: Path) -> None:
    """The manifest is built from the recorded entries: their keys stay in the order written."""
    storage = LocalStorage(tmp_path / "store")
    entry = {"id": "x", "kind": "image", "order": 1, "status": "done", "renditions": [{"preset": "web@1", "key": "k"}]}
    jobs.write_asset_result(storage, "s", "j", jobs.AssetResult(order=1, entry=entry))
    read = jobs.read_asset_result(storage, "s", "j", 1)
    assert read is not None and list(read.entry) == list(entry)
    assert list(read.entry["renditions"][0]) == ["preset", "key"]
