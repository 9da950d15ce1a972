"""Manifest building, schema validation and versioning on a storage backend."""

from __future__ import annotations

import json

import jsonschema
import pytest

from pipeline import manifest
from pipeline.storage import MemoryStorage
from pipeline.story import parse_story

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
    with pytest.raises(jsonschema.ValidationError):
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

    from pipeline import text
    from pipeline.errors import RenderError

    monkeypatch.setattr(features, "check", lambda name: False)
    with pytest.raises(RenderError, match="libraqm is missing"):
        text.require_raqm()
