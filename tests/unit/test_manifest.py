"""Manifest building, schema validation and versioning on a storage backend."""

from __future__ import annotations

import json

import pytest

from pipeline.errors import ManifestInvalid, StorageError
from pipeline.model import manifest
from pipeline.model.story import parse_story
from pipeline.storage import MemoryStorage

STORY = parse_story({
    "story": {"id": "s-2023", "title": "Thành phố Thanh Hóa", "byline": "Đình Hà",
              "published": "2023-09-12T21:15:00+07:00", "source": "PCTN"},
    "assets": [{"file": "a.jpg"}, {"file": "b.jpg"}]})


def rendition(n: int) -> dict:
    return {"preset": "web@1", "name": "w320", "key": f"renditions/{'a' * 16}/web@1/w320-{n:08x}.jpg",
            "url": "u", "mime": "image/jpeg", "bytes": 10, "sha256": "0" * 64, "width": 320, "height": 200}


def entry(order: int, *, failed: bool = False) -> dict:
    doc = {"id": f"{order:016x}", "kind": "image", "order": order, "filename": f"{order}.jpg",
           "source": {"sha256": "1" * 64, "bytes": 5}, "caption": "", "credit": "", "copyright": "",
           "status": "failed" if failed else "done", "renditions": [] if failed else [rendition(order)]}
    if failed:
        doc["error"] = {"code": "empty", "reason": "the file is empty (0 bytes)", "retryable": False}
    return doc


@pytest.mark.parametrize(("failed", "status"), [((), "complete"), ((2,), "partial"), ((1, 2), "failed")])
def test_status_and_summary(failed, status) -> None:
    doc = manifest.build(STORY, [entry(i, failed=i in failed) for i in (1, 2)], "job1", 1)
    manifest.validate(doc)
    assert doc["status"] == status
    assert doc["summary"]["failed"] == len(failed)


@pytest.mark.parametrize("breakage", [
    lambda d: d.pop("assets"),
    lambda d: d.update(status="done"),
    lambda d: d["assets"][0].update(status="failed"),                 # failed needs an error
    lambda d: d["assets"][0]["renditions"][0].update(sha256="xyz"),
    lambda d: d["assets"][0]["renditions"][0].update(key="/etc/passwd"),
    lambda d: d["story"].update(extra=1),
])
def test_schema_rejects_broken_documents(breakage) -> None:
    doc = manifest.build(STORY, [entry(1)], "job1", 1)
    breakage(doc)
    with pytest.raises(ManifestInvalid):
        manifest.validate(doc)


def test_versions_go_up_only_when_content_changes() -> None:
    store = MemoryStorage()
    first = manifest.write(store, STORY, [entry(1)], "job1")
    assert (first.version, first.changed) == (1, True)
    writes = store.writes
    same = manifest.write(store, STORY, [entry(1)], "job2")
    assert (same.version, same.changed) == (1, False)
    assert store.writes == writes, "nothing written when nothing changed"
    second = manifest.write(store, STORY, [entry(1), entry(2)], "job3")
    assert (second.version, second.changed) == (2, True)
    assert json.loads(store.get_bytes("stories/s-2023/manifest.v1.json"))["version"] == 1
    assert json.loads(store.get_bytes("stories/s-2023/manifest.json"))["version"] == 2


def test_renditions_by_key() -> None:
    doc = manifest.build(STORY, [entry(1), entry(2)], "j", 1)
    assert set(manifest.renditions_by_key(doc)) == {rendition(1)["key"], rendition(2)["key"]}
    assert manifest.renditions_by_key(None) == {}


def test_raqm_missing_is_a_clear_error(monkeypatch) -> None:
    from PIL import features

    from pipeline.errors import RenderError
    from pipeline.render.graphics import text

    monkeypatch.setattr(features, "check", lambda name: False)
    with pytest.raises(RenderError, match="libraqm is missing"):
        text.require_raqm()


def test_versions_follow_the_highest_version_file_when_manifest_json_is_lost() -> None:
    """v1, v2, manifest.json deleted, a new run: v3 (v1 was overwritten and called current before)."""
    store = MemoryStorage()
    manifest.write(store, STORY, [entry(1)], "job1")
    manifest.write(store, STORY, [entry(1), entry(2)], "job2")
    v1 = store.get_bytes("stories/s-2023/manifest.v1.json")
    store.delete("stories/s-2023/manifest.json")
    third = manifest.write(store, STORY, [entry(2)], "job3")
    assert (third.version, third.changed) == (3, True)
    assert store.get_bytes("stories/s-2023/manifest.v1.json") == v1
    assert json.loads(store.get_bytes("stories/s-2023/manifest.json"))["version"] == 3


def test_unchanged_content_restores_a_lost_manifest_json() -> None:
    store = MemoryStorage()
    manifest.write(store, STORY, [entry(1)], "job1")
    manifest.write(store, STORY, [entry(1), entry(2)], "job2")
    store.delete("stories/s-2023/manifest.json")
    same = manifest.write(store, STORY, [entry(1), entry(2)], "job3")
    assert (same.version, same.changed) == (2, False)
    assert json.loads(store.get_bytes("stories/s-2023/manifest.json"))["version"] == 2
    assert manifest.versions(store, "s-2023") == [1, 2]


class RacingStorage(MemoryStorage):
    """Another writer creates the next version between our look and our write (once)."""

    def __init__(self) -> None:
        super().__init__()
        self.raced = False

    def create(self, key: str, data: bytes, **kwargs) -> bool:
        if not self.raced and key.endswith("manifest.v2.json"):
            self.raced = True
            other = manifest.build(STORY, [entry(2)], "other-job", 2)
            super().create(key, manifest.encode(other), **kwargs)
        return super().create(key, data, **kwargs)


def test_a_version_file_is_never_replaced_by_a_racing_writer() -> None:
    store = RacingStorage()
    manifest.write(store, STORY, [entry(1)], "job1")
    mine = manifest.write(store, STORY, [entry(1), entry(2)], "job2")
    assert mine.version == 3, "the loser goes on from the winner's version"
    assert json.loads(store.get_bytes("stories/s-2023/manifest.v2.json"))["job"] == "other-job"
    assert json.loads(store.get_bytes("stories/s-2023/manifest.v3.json"))["job"] == "job2"


@pytest.mark.parametrize(("code", "retryable"), [("out-of-memory", True), ("time-limit", True),
                                                 ("worker-crashed", True), ("truncated", False)])
def test_a_failed_rerun_keeps_what_was_published(code: str, retryable: bool) -> None:
    store = MemoryStorage()
    manifest.write(store, STORY, [entry(1), entry(2)], "job1")
    failed = entry(2, failed=True)
    failed["error"] = {"code": code, "reason": "không đủ bộ nhớ", "retryable": retryable}
    written = manifest.write(store, STORY, [entry(1), failed], "job2")
    doc = written.document
    manifest.validate(doc)
    kept = doc["assets"][1]
    assert kept["status"] == "done" and kept["renditions"] == [rendition(2)], "never publishes less"
    assert kept["update_failed"] == failed["error"]
    assert doc["status"] == "partial" and doc["summary"]["updates_failed"] == 1
    # The next good run clears the mark.
    again = manifest.write(store, STORY, [entry(1), entry(2)], "job3").document
    assert "update_failed" not in again["assets"][1] and again["status"] == "complete"


def test_a_manifest_read_back_is_checked_against_the_schema() -> None:
    store = MemoryStorage()
    doc = manifest.build(STORY, [entry(1)], "job1", 1)
    doc["assets"][0]["renditions"][0]["key"] = "renditions/../../../home/x/.bashrc"
    store.replace("stories/s-2023/manifest.json", manifest.encode(doc), content_type="application/json")
    with pytest.raises(StorageError, match=r"not a valid manifest: assets/0/renditions/0/key"):
        manifest.read(store, "stories/s-2023/manifest.json")
    assert manifest.read_current(store, "s-2023") is None, "nothing is reused from it"


@pytest.mark.parametrize("key", ["raw/ab/" + "a" * 64, "stories/s/jobs/j.json", "renditions/../x",
                                 "renditions/a/../../x", "/etc/passwd", "renditions/./a"])
def test_the_schema_allows_only_public_rendition_keys(key: str) -> None:
    doc = manifest.build(STORY, [entry(1)], "job1", 1)
    doc["assets"][0]["renditions"][0]["key"] = key
    with pytest.raises(ManifestInvalid):
        manifest.validate(doc)
