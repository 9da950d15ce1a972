"""Presets load into frozen objects; bad files fail at load with file and field named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline.errors import InvalidPreset
from pipeline.model.presets import default_presets_dir, load_preset_file, load_presets, parse_preset
from tests.conftest import PRESETS


@pytest.mark.parametrize("name", ["web", "broadcast", "social"])
def test_every_bundled_preset_loads(name: str) -> None:
    preset = load_preset_file(PRESETS / f"{name}.toml")
    assert preset.name == name
    assert preset.version >= 1
    assert preset.images
    assert preset.logo_path is not None and preset.logo_path.is_file()
    assert preset.font_path.is_file()


def test_radio_preset_loads_with_two_loudness_targets(presets) -> None:
    radio = presets["radio"]
    assert radio.images == () and radio.video is None
    assert {(o.type, o.loudness.integrated) for o in radio.audio.outputs} == {
        ("bwf", -23.0), ("aac", -16.0), ("mp3", -16.0)}


def test_web_preset_expands_widths_and_formats(presets) -> None:
    web = presets["web"]
    pairs = {(s.name, s.format) for s in web.images}
    for width in (320, 640, 1024, 1600, 2000):
        assert (f"w{width}", "jpeg") in pairs
        assert (f"w{width}", "webp") in pairs
    assert all(s.mode == "width" for s in web.images)


def test_broadcast_and_social_frames(presets) -> None:
    (still,) = presets["broadcast"].images
    assert (still.width, still.height, still.mode) == (1920, 1080, "fill")
    social = {(s.width, s.height) for s in presets["social"].images}
    assert social == {(1080, 1080), (1080, 1350)}
    assert all(s.caption for s in presets["social"].images)


def test_presets_are_frozen(presets) -> None:
    with pytest.raises(ValidationError):
        presets["web"].version = 9


BASE = {"preset": {"name": "web", "version": 1},
        "image": {"renditions": [{"widths": [320], "formats": ["jpeg"]}]}}

BAD = [
    ({"preset": {"name": "Web!", "version": 1}}, "preset.name: must be a short lower-case name"),
    ({"preset": {"name": "web", "version": 0}}, "version: Input should be greater than or equal to 1"),
    ({"image": {"renditions": [{"widths": [320], "formats": ["gif"]}]}},
     "image.renditions[0]: formats[0]: Input should be 'jpeg', 'webp', 'avif' or 'png'"),
    ({"image": {"renditions": [{"widths": [320], "formats": ["jpeg"], "quality": 130}]}},
     "quality: Input should be less than or equal to 100"),
    ({"image": {"renditions": [{"widths": [320, 320]}]}}, "widths must not repeat"),
    ({"image": {"renditions": [{"width": 320, "widths": [640]}]}}, "give either 'width' or 'widths'"),
    ({"image": {"renditions": [{"mode": "fill", "width": 1080}]}}, "mode 'fill' needs both width and height"),
    ({"image": {"renditions": [{"widths": [8]}]}}, "width: Input should be greater than or equal to 16"),
    ({"image": {"renditions": [{"widths": [320], "sharpen": True}]}}, "image.renditions[0]: sharpen: unknown field"),
    ({"image": {"renditions": []}}, "declares no renditions"),
    ({"logo": {"position": "middle"}}, "logo.position: Input should be"),
    ({"logo": {"width": 0.9}}, "logo.width: Input should be less than or equal to 0.5"),
    ({"logo": {"file": "station/missing.png"}}, "logo.file:"),
    ({"caption": {"text_colour": "white"}}, "caption.text_colour: must be a colour like #1A2B3C"),
    ({"video": {}}, "video.outputs: is required"),
    ({"video": {"outputs": [{"type": "gif", "name": "x"}]}}, "video.outputs[0]"),
    ({"video": {"frame_rate": "ntsc", "outputs": [{"type": "poster"}]}}, "video.frame_rate: Input should be 'natural' or 'pal-interlaced'"),
    ({"video": {"loudness": {"integrated": 3}, "outputs": [{"type": "poster"}]}}, "video.loudness.integrated"),
    ({"video": {"outputs": [{"type": "poster"}, {"type": "poster"}]}}, "name 'poster' must be unique"),
    ({"audio": {}}, "audio.outputs: is required"),
]


@pytest.mark.parametrize(("change", "message"), BAD, ids=[m[:40] for _, m in BAD])
def test_bad_preset_names_file_and_field(change: dict, message: str) -> None:
    data = {**BASE, **change}
    with pytest.raises(InvalidPreset) as caught:
        parse_preset(data, PRESETS, "presets/web.toml")
    assert "presets/web.toml: " in str(caught.value)
    assert message in str(caught.value)


def test_name_must_match_file(tmp_path: Path) -> None:
    shutil.copytree(PRESETS, tmp_path / "presets")
    text = (tmp_path / "presets" / "web.toml").read_text().replace('name = "web"', 'name = "webby"')
    (tmp_path / "presets" / "web.toml").write_text(text)
    with pytest.raises(InvalidPreset, match=r"web.toml: preset.name: 'webby' must match"):
        load_presets(tmp_path / "presets")


def test_broken_toml_stops_the_load(tmp_path: Path) -> None:
    shutil.copytree(PRESETS, tmp_path / "presets")
    (tmp_path / "presets" / "radio.toml").write_text("[preset\n")
    with pytest.raises(InvalidPreset, match=r"radio.toml: not valid TOML"):
        load_presets(tmp_path / "presets")


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(InvalidPreset, match="no preset files"):
        load_presets(tmp_path)


def test_default_presets_dir_is_the_repository_folder_unless_the_environment_says(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("STORYMEDIA_PRESETS", raising=False)
    assert default_presets_dir() == PRESETS.resolve()
    assert (default_presets_dir() / "web.toml").is_file()
    monkeypatch.setenv("STORYMEDIA_PRESETS", str(tmp_path))
    assert default_presets_dir() == tmp_path
