"""The bundled sample story (Thanh Hóa, 12/09/2023) through ``storymedia run``: the acceptance run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pipeline.model.manifest import validate
from pipeline.model.story import load_story
from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.e2e
EXAMPLE = REPO / "examples" / "thanh-hoa"


@pytest.fixture
def sample(sample_run: tuple[Path, Path, subprocess.CompletedProcess[str]]
           ) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    return sample_run


def _manifest(out: Path) -> dict:
    (path,) = (out / "stories").glob("*/manifest.json")
    return json.loads(path.read_text("utf-8"))


def _exiftool(paths: list[Path]) -> list[dict]:
    result = subprocess.run(["exiftool", "-j", "-G1", "-a", *map(str, paths)], capture_output=True,
                            text=True, check=True)
    return json.loads(result.stdout)


def test_run_exits_0_and_prints_the_manifest_path(sample) -> None:
    _root, out, result = sample
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = next((out / "stories").glob("*/manifest.json"))
    assert f"Manifest: {manifest}" in result.stdout.replace("\n", "")
    assert "Status: complete" in result.stdout
    # Largest process: the clip's one ffmpeg feeding 11 encoders (about 1.5 GB at 1080p).
    assert result.peak_mb < 2200, f"peak memory {result.peak_mb:.0f} MB (24 MP photos, 1080p clip)"


def test_manifest_validates_and_lists_ten_photos_with_all_renditions(sample, presets) -> None:
    root, out, _ = sample
    doc = _manifest(out)
    validate(doc)
    story = load_story(root / "story.toml")
    assert doc["story"]["title"] == "Thành phố Thanh Hóa tăng cường kỷ cương, kỷ luật công vụ"
    assert doc["story"]["byline"] == "Đình Hà – Đức Anh"
    assert doc["story"]["published"] == "2023-09-12T21:15:00+07:00"
    assert doc["story"]["source"] == "Phòng chống tham nhũng"
    assert doc["status"] == "complete"
    assert [a["kind"] for a in doc["assets"]] == ["image"] * 10 + ["video", "audio"]
    for entry, spec in zip(doc["assets"][:10], story.assets[:10], strict=True):
        assert entry["kind"] == "image" and entry["status"] == "done"
        assert entry["caption"] == spec.caption
        width = entry["source"]["width"]
        web_widths = {w for w in (320, 640, 1024, 1600, 2000) if w <= width} | (
            {width} if width < 2000 else set())
        got = {(r["preset"], r["name"], r["mime"]) for r in entry["renditions"]}
        expected = {("web@1", f"w{w}", mime) for w in web_widths for mime in ("image/jpeg", "image/webp")}
        expected |= {("broadcast@1", "still-1080", "image/jpeg"), ("social@1", "square", "image/jpeg"),
                     ("social@1", "portrait", "image/jpeg")}
        assert got == expected, entry["filename"]
        for rendition in entry["renditions"]:
            path = out / rendition["key"]
            assert path.stat().st_size == rendition["bytes"]
            assert rendition["url"] == rendition["key"]


def test_the_clip_and_the_radio_piece_have_every_rendition(sample) -> None:
    _root, out, _ = sample
    clip, radio = _manifest(out)["assets"][10:]
    assert clip["status"] == radio["status"] == "done"
    assert {(r["preset"], r["name"]) for r in clip["renditions"]} == {
        ("web@1", "mp4-1080"), ("web@1", "mp4-720"), ("web@1", "hls"), ("web@1", "poster"),
        ("web@1", "captions"), ("web@1", "sprite"), ("broadcast@1", "xdcam-hd422"),
        ("broadcast@1", "proxy-1080p25"),
        ("social@1", "vertical"), ("social@1", "square"), ("radio@1", "bwf"), ("radio@1", "aac-128"),
        ("radio@1", "mp3-128")}
    by_name = {r["name"]: r for r in clip["renditions"]}
    assert by_name["xdcam-hd422"]["video"]["field_order"] == "tt"
    assert by_name["xdcam-hd422"]["loudness"]["integrated"] == pytest.approx(-23, abs=1)
    assert by_name["mp4-1080"]["loudness"]["integrated"] == pytest.approx(-16, abs=1)
    assert len(by_name["hls"]["variants"]) == 4
    for segment in by_name["hls"]["segments"]:
        assert (out / segment["key"]).stat().st_size == segment["bytes"]
    assert {r["name"] for r in radio["renditions"]} == {"bwf", "aac-128", "mp3-128"}


def test_the_two_named_captions_are_verbatim_from_the_article(sample) -> None:
    _root, out, _ = sample
    captions = {a["filename"]: a["caption"] for a in _manifest(out)["assets"]}
    assert captions["anh-05.jpg"] == "Bà Lê Thị Minh Tâm, Chủ tịch UBND phường Phú Sơn, thành phố Thanh Hóa"
    assert captions["anh-08.jpg"] == "Ông Nguyễn Đình Thênh, Bí thư Đảng ủy phường Tân Sơn, thành phố Thanh Hóa"


def test_exiftool_reads_caption_and_credit_from_every_web_rendition(sample) -> None:
    _root, out, _ = sample
    doc = _manifest(out)
    paths, expected = [], []
    for entry in doc["assets"]:
        for rendition in entry["renditions"]:
            if rendition["preset"] == "web@1" and entry["kind"] == "image":
                paths.append(out / rendition["key"])
                expected.append((entry["caption"], entry["credit"], rendition["mime"]))
    assert len(paths) >= 90
    for tags, (caption, credit, mime) in zip(_exiftool(paths), expected, strict=True):
        assert tags["XMP-dc:Description"] == caption
        assert tags["XMP-photoshop:Credit"] == credit
        if mime == "image/jpeg":
            assert tags["IPTC:Caption-Abstract"] == caption
            assert tags["IPTC:Credit"] == credit


def test_no_rendition_carries_gps(sample) -> None:
    root, out, _ = sample
    (source_tags,) = _exiftool([root / "media" / "anh-02.jpg"])
    assert any("GPS" in key for key in source_tags), "the camera original does carry GPS"
    photos = [out / r["key"] for a in _manifest(out)["assets"] if a["kind"] == "image"
              for r in a["renditions"]]
    assert len(photos) == 128
    for tags in _exiftool(photos):
        assert not [k for k in tags if "GPS" in k or "Serial" in k], tags["System:FileName"]


def test_second_run_does_nothing(sample) -> None:
    root, out, _ = sample
    again = run_cli("run", str(root / "story.toml"), "--out", str(out.parent))   # out is OUT/public
    assert again.returncode == 0
    assert "Nothing to do" in again.stdout
    assert _manifest(out)["version"] == 1
