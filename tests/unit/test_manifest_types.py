"""The manifest's types: every rendition kind reads back and writes out unchanged; ``objects``."""

from __future__ import annotations

import json

import pydantic
import pytest

from pipeline.errors import ManifestInvalid, PipelineError
from pipeline.model import manifest
from pipeline.model.manifest_types import (
    AssetEntry,
    ClipFacts,
    Failure,
    RenditionHead,
    VideoStream,
    parse_rendition,
    rendition,
    rendition_kind,
)
from pipeline.model.story import parse_story

STORY = parse_story({
    "story": {"id": "s-2023", "title": "Thành phố Thanh Hóa", "published": "2023-09-12T21:15:00+07:00"},
    "assets": [{"file": "clip.mp4"}]})
PREFIX = "renditions/" + "a" * 16 + "/web@1/"


def head(name: str, ext: str, mime: str) -> dict:
    return {"preset": "web@1", "name": name, "key": f"{PREFIX}{name}.{ext}", "url": f"/{name}.{ext}",
            "mime": mime, "bytes": 1000, "sha256": "2" * 64}


def part(name: str) -> dict:
    return {"key": PREFIX + name, "bytes": 12, "sha256": "3" * 64}


LOUDNESS = {"integrated": -23.1, "true_peak": -2.0}
KINDS = {
    "image": {**head("w320", "jpg", "image/jpeg"), "width": 320, "height": 200, "layout": "crop"},
    "clip": {**head("mp4-720", "mp4", "video/mp4"), "width": 1280, "height": 720,
             "video": {"codec": "h264", "pix_fmt": "yuv420p", "fps": 25.0, "field_order": "progressive"},
             "duration": 12.04, "bitrate": 2000000,
             "audio": {"codec": "aac", "tracks": 1, "channels": 2, "sample_rate": 48000}, "loudness": LOUDNESS},
    "hls": {**head("hls", "m3u8", "application/vnd.apple.mpegurl"), "width": 1280, "height": 720,
            "duration": 12, "variants": [{"name": "720p", "width": 1280, "height": 720,
                                          "codecs": "avc1.64001f,mp4a.40.2", "playlist": PREFIX + "720p/index.m3u8",
                                          "iframe_playlist": PREFIX + "720p/iframes.m3u8"}],
            "segments": [part("720p/init.mp4"), part("720p/seg-00000.m4s")],
            "playlists": [part("720p/index.m3u8"), part("720p/iframes.m3u8")], "loudness": LOUDNESS},
    "sprite": {**head("thumbnails", "vtt", "text/vtt"), "width": 160, "height": 90, "thumbnails": 7,
               "interval": 2, "sheets": [part("sprite-000.jpg"), part("sprite-001.jpg")]},
    "poster": {**head("poster", "jpg", "image/jpeg"), "width": 1280, "height": 720},
    "captions": {**head("captions", "vtt", "text/vtt"), "cues": 4},
    "audio": {**head("aac-128", "m4a", "audio/mp4"), "duration": 30.0, "bitrate": 128000,
              "audio": {"codec": "aac", "tracks": 1, "channels": 2, "sample_rate": 48000}},
}


def entry(renditions: list[dict]) -> dict:
    return {"id": "a" * 16, "kind": "video", "order": 1, "filename": "clip.mp4",
            "source": {"sha256": "1" * 64, "bytes": 5, "mime": "video/mp4", "duration": 12.04,
                       "width": 1280, "height": 720,
                       "video": {"codec": "h264", "pix_fmt": "yuv420p", "fps": 25.0,
                                 "field_order": "progressive", "rotation": 0, "vfr": False},
                       "audio": {"codec": "aac", "channels": 2, "sample_rate": 48000}},
            "caption": "", "credit": "", "copyright": "", "focus": [0.5, 0.35], "status": "done",
            "renditions": renditions}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_reads_back_and_writes_out_unchanged(kind: str) -> None:
    data = KINDS[kind]
    typed = parse_rendition(data)
    assert typed.kind == kind == rendition_kind(data)
    assert json.dumps(typed.to_json()) == json.dumps(data), "same keys, same order, same numbers"


def test_a_whole_manifest_writes_out_byte_for_byte() -> None:
    document = manifest.build(STORY, [entry(list(KINDS.values()))], "job1", 1)
    manifest.validate(document)
    again = manifest.build(STORY, [json.loads(manifest.encode(document))["assets"][0]], "job1", 1)
    again["generated_at"] = document["generated_at"]
    assert manifest.encode(again) == manifest.encode(document)
    assert [list(r) for r in document["assets"][0]["renditions"]] == [list(r) for r in KINDS.values()]


def test_integers_stay_integers_and_floats_stay_floats() -> None:
    out = parse_rendition(KINDS["sprite"]).to_json()
    assert out["interval"] == 2 and isinstance(out["interval"], int)
    assert isinstance(parse_rendition(KINDS["clip"]).to_json()["video"]["fps"], float)


def test_objects_lists_every_object_with_segments_playlists_and_sheets() -> None:
    listed = manifest.objects([entry(list(KINDS.values()))])
    assert [o.key for o in listed] == [
        KINDS["image"]["key"], KINDS["clip"]["key"],
        KINDS["hls"]["key"], *(p["key"] for p in KINDS["hls"]["segments"]),
        *(p["key"] for p in KINDS["hls"]["playlists"]),
        KINDS["sprite"]["key"], *(p["key"] for p in KINDS["sprite"]["sheets"]),
        KINDS["poster"]["key"], KINDS["captions"]["key"], KINDS["audio"]["key"]]
    assert {(o.sha256, o.bytes) for o in listed} == {("2" * 64, 1000), ("3" * 64, 12)}
    typed = AssetEntry.model_validate(entry([KINDS["hls"]]))
    assert manifest.objects([typed]) == manifest.objects([entry([KINDS["hls"]])]) == typed.objects()


def test_a_failed_entry_names_no_object_and_needs_a_reason() -> None:
    done = AssetEntry.model_validate(entry([KINDS["image"]]))
    failed = done.failed(Failure(code="truncated", reason="the file is cut short", retryable=False))
    assert failed.to_json()["status"] == "failed" and failed.to_json()["renditions"] == []
    assert list(failed.to_json())[-2:] == ["renditions", "error"], "error follows renditions"
    assert manifest.objects([failed]) == []
    with pytest.raises(pydantic.ValidationError, match="says why"):
        AssetEntry.model_validate({**entry([]), "status": "failed"})


def test_update_failed_keeps_the_published_renditions() -> None:
    done = AssetEntry.model_validate(entry([KINDS["poster"]]))
    kept = done.with_update_failed(3, Failure(code="limit", reason="took too long", retryable=True)).to_json()
    assert kept["order"] == 3 and kept["renditions"] == [KINDS["poster"]]
    assert list(kept)[-1] == "update_failed"


def test_facts_typed_or_as_json_make_the_same_rendition() -> None:
    top = RenditionHead.model_validate(head("mp4-720", "mp4", "video/mp4"))
    facts = {k: v for k, v in KINDS["clip"].items() if k not in top.to_json()}
    typed = ClipFacts(width=1280, height=720, video=VideoStream(codec="h264", pix_fmt="yuv420p", fps=25.0,
                                                                field_order="progressive"),
                      duration=12.04, bitrate=2000000, audio=KINDS["clip"]["audio"], loudness=LOUDNESS)
    assert rendition(top, typed).to_json() == rendition(top, facts).to_json() == KINDS["clip"]


def test_an_invalid_manifest_is_a_pipeline_error_naming_the_field() -> None:
    document = manifest.build(STORY, [entry([KINDS["hls"]])], "job1", 1)
    document["assets"][0]["renditions"][0]["segments"][1]["sha256"] = "not-a-checksum"
    with pytest.raises(ManifestInvalid, match=r"assets/0/renditions/0/segments/1/sha256") as caught:
        manifest.validate(document)
    assert isinstance(caught.value, PipelineError) and not caught.value.retryable


def test_a_manifest_read_back_must_fit_the_types_too() -> None:
    """The schema allows a rendition with ``variants`` and no segments; the HLS type does not."""
    document = manifest.build(STORY, [entry([KINDS["hls"]])], "job1", 1)
    del document["assets"][0]["renditions"][0]["segments"]
    manifest.validate(document)
    with pytest.raises(ManifestInvalid, match=r"s-2023/manifest.json is not a valid manifest: assets/0/renditions"):
        manifest.parse(manifest.encode(document), "stories/s-2023/manifest.json")
