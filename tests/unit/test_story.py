"""Story files: what is accepted, and how errors name the file, the field and the problem."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from pipeline.errors import InvalidStory
from pipeline.story import load_story, parse_story

GOOD = {
    "story": {
        "id": "tp-thanh-hoa-2023-09-12",
        "title": "Thành phố Thanh Hóa tăng cường kỷ cương, kỷ luật công vụ",
        "byline": "Đình Hà – Đức Anh",
        "published": "2023-09-12T21:15:00+07:00",
        "source": "Phòng chống tham nhũng",
    },
    "assets": [{"file": "media/a.jpg", "caption": "Bà Lê Thị Minh Tâm", "focus": [0.5, 0.35]}],
}


def _with(path: str, value: object) -> dict:
    doc = json.loads(json.dumps(GOOD))
    target = doc
    parts = path.split(".")
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is _DELETE:
        del target[parts[-1]]
    else:
        target[parts[-1]] = value
    return doc


_DELETE = object()

BAD = [
    ("story.id", "Thanh Hoa!", "story.id: must be a slug"),
    ("story.id", "-leading-dash", "story.id: must be a slug"),
    ("story.title", "", "story.title: must not be empty"),
    ("story.title", _DELETE, "story.title: is required"),
    ("story.published", "2023-09-12T21:15:00", "story.published: needs a time zone"),
    ("story.published", "yesterday", "story.published:"),
    ("story.language", "Vietnamese!", "story.language:"),
    ("story.colour", "red", "story.colour: unknown field"),
    ("assets", [], "assets: needs at least 1 item(s)"),
    ("assets.0.focus", [0.5, 1.2], "assets[0].focus: both numbers must be between 0 and 1"),
    ("assets.0.focus", [0.5], "assets[0].focus"),
    ("assets.0.file", "/etc/passwd", "assets[0].file: must be a path relative to the story file"),
    ("assets.0.file", "../../secret.jpg", "assets[0].file: must be a path relative"),
    ("assets.0.caption", "bad\x07bell", "assets[0].caption: contains control characters"),
    ("assets.0.lower_third", {"name": "A", "start": 5, "end": 2}, "assets[0].lower_third: end must be after start"),
    ("assets.0.captoin", "typo", "assets[0].captoin: unknown field"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD, ids=[f"{p}={v!r}"[:40] for p, v, _ in BAD])
def test_bad_story_names_field_and_problem(path: str, value: object, message: str) -> None:
    with pytest.raises(InvalidStory) as caught:
        parse_story(_with(path, value), "story.toml")
    assert f"story.toml: {message}" in str(caught.value)


def test_good_story_defaults() -> None:
    story = parse_story(GOOD)
    assert story.story.presets == ("web", "broadcast", "social")
    assert story.story.language == "vi"
    assert story.assets[0].focus == (0.5, 0.35)
    assert story.asset_presets(story.assets[0]) == ("web", "broadcast", "social")


def test_text_is_nfc_normalised() -> None:
    nfd = unicodedata.normalize("NFD", "Bà Lê Thị Minh Tâm, Chủ tịch UBND phường Phú Sơn")
    story = parse_story(_with("assets.0.caption", nfd))
    caption = story.assets[0].caption
    assert caption == unicodedata.normalize("NFC", nfd)
    assert caption != nfd


def test_load_toml_checks_files_and_presets(tmp_path: Path) -> None:
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "a.jpg").write_bytes(b"x")
    (tmp_path / "story.toml").write_text(
        '[story]\nid = "s"\ntitle = "T"\npublished = 2023-09-12T21:15:00+07:00\n'
        'presets = ["web", "cinema"]\n'
        '[[assets]]\nfile = "media/a.jpg"\n[[assets]]\nfile = "media/missing.jpg"\n',
        encoding="utf-8")
    with pytest.raises(InvalidStory) as caught:
        load_story(tmp_path / "story.toml", known_presets=["web", "broadcast"])
    text = str(caught.value)
    assert "assets[1].file: media/missing.jpg does not exist" in text
    assert "unknown preset 'cinema'" in text


def test_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(b"x")
    story_dir = tmp_path / "story"
    story_dir.mkdir()
    (story_dir / "a.jpg").symlink_to(outside)
    (story_dir / "story.json").write_text(json.dumps(_with("assets.0.file", "a.jpg")))
    with pytest.raises(InvalidStory, match=r"assets\[0\]\.file: a.jpg leaves the story folder"):
        load_story(story_dir / "story.json")


def test_unparseable_toml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "story.toml"
    bad.write_text("[story\nid=", encoding="utf-8")
    with pytest.raises(InvalidStory, match=r"story.toml: not valid TOML"):
        load_story(bad)
