"""Story files: what is accepted, and how errors name the file, the field and the problem."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pytest

from pipeline.errors import InvalidStory
from pipeline.model.story import load_story, locate, parse_story
from pipeline.model.subtitles import SubtitleLimits

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


class _Deleted:
    """The field removed (a stable repr: the test ids are the same in every process)."""

    def __repr__(self) -> str:
        return "<removed>"


_DELETE = _Deleted()

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


NFC_NAME = unicodedata.normalize("NFC", "Ảnh 5 – Bà Tâm.jpg")
NFD_NAME = unicodedata.normalize("NFD", NFC_NAME)
MIXED_NAME = "Lê\u0323 Văn.jpg"      # ê + combining dot below: neither NFC nor NFD


def _story_naming(folder: Path, file: str, subtitles: str | None = None) -> Path:
    asset: dict[str, str] = {"file": file, "caption": "Bà Tâm"}
    if subtitles is not None:
        asset["subtitles"] = subtitles
    story_file = folder / "story.json"
    story_file.write_text(json.dumps({**GOOD, "assets": [asset]}, ensure_ascii=False), encoding="utf-8")
    return story_file


@pytest.mark.parametrize(("on_disk", "in_story"), [
    (NFD_NAME, NFC_NAME),      # a phone's or a Mac's file named in a story typed on Windows
    (NFC_NAME, NFD_NAME),      # the other way round
    (MIXED_NAME, MIXED_NAME),  # exactly as written, though the model keeps the NFC form
    (MIXED_NAME, unicodedata.normalize("NFC", MIXED_NAME)),   # neither form on disk: found by comparing normalised names
], ids=["nfd-on-disk", "nfc-on-disk", "mixed-as-written", "mixed-on-disk"])
def test_asset_file_is_found_whatever_its_normalisation(tmp_path: Path, on_disk: str, in_story: str) -> None:
    folder = unicodedata.normalize("NFD", "Ảnh mới")      # folders are looked up the same way
    (tmp_path / folder).mkdir()
    (tmp_path / folder / on_disk).write_bytes(b"photo")
    (tmp_path / folder / "phụ đề.srt").write_text("1\n00:00:01,000 --> 00:00:02,000\nXin chào\n",
                                                   encoding="utf-8")
    story_file = _story_naming(tmp_path, f"{unicodedata.normalize('NFC', 'Ảnh mới')}/{in_story}",
                               subtitles=unicodedata.normalize("NFC", f"{folder}/phụ đề.srt"))
    story = load_story(story_file)
    asset = story.assets[0]
    assert asset.file == unicodedata.normalize("NFC", f"Ảnh mới/{in_story}")   # the model keeps NFC
    assert asset.caption == "Bà Tâm"
    found = locate(tmp_path, asset.file_as_written)
    assert found is not None and found.read_bytes() == b"photo"
    assert found.name == on_disk
    assert asset.subtitles_as_written is not None
    assert locate(tmp_path, asset.subtitles_as_written) == tmp_path / folder / "phụ đề.srt"


def test_the_name_as_written_wins_over_another_form(tmp_path: Path) -> None:
    (tmp_path / MIXED_NAME).write_bytes(b"as written")
    (tmp_path / unicodedata.normalize("NFC", MIXED_NAME)).write_bytes(b"nfc")
    (tmp_path / unicodedata.normalize("NFD", MIXED_NAME)).write_bytes(b"nfd")
    story_file = _story_naming(tmp_path, MIXED_NAME)
    assert _found(story_file).read_bytes() == b"as written"
    nfd_story = _story_naming(tmp_path, unicodedata.normalize("NFD", MIXED_NAME))
    assert _found(nfd_story).read_bytes() == b"nfd"


def _found(story_file: Path) -> Path:
    found = locate(story_file.parent, load_story(story_file).assets[0].file_as_written)
    assert found is not None
    return found


def test_locate_stays_in_the_folder_and_says_none_when_missing(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"x")
    assert locate(tmp_path, "a.jpg") == tmp_path / "a.jpg"
    assert locate(tmp_path, unicodedata.normalize("NFD", "ả.jpg")) is None
    assert locate(tmp_path, "../a.jpg") is None
    with pytest.raises(InvalidStory, match=r"assets\[0\]\.file: ảnh.jpg does not exist"):
        load_story(_story_naming(tmp_path, unicodedata.normalize("NFD", "ảnh.jpg")))


XML_FORBIDDEN = [
    ("\ufffe", "U+FFFE"), ("\uffff", "U+FFFF"), ("\ufdd0", "U+FDD0"), ("\ufdef", "U+FDEF"),
    ("\U0001fffe", "U+1FFFE"), ("\U0010ffff", "U+10FFFF"), ("\ud800", "U+D800"), ("\udfff", "U+DFFF"),
    ("\x01", "U+0001"), ("\x1b", "U+001B"),
]


@pytest.mark.parametrize(("char", "code"), XML_FORBIDDEN, ids=[c for _ch, c in XML_FORBIDDEN])
@pytest.mark.parametrize("field", ["story.title", "story.byline", "story.source", "story.copyright",
                                   "assets.0.caption", "assets.0.credit", "assets.0.copyright",
                                   "assets.0.lower_third"])
def test_characters_xmp_cannot_carry_are_refused_with_the_field_named(field: str, char: str, code: str) -> None:
    value: object = f"Bà Tâm{char} ở Thanh Hóa"
    where = field.replace("assets.0", "assets[0]")
    if field.endswith("lower_third"):
        value, where = {"name": "Bà Tâm", "title": f"Chủ tịch{char}"}, "assets[0].lower_third.title"
    with pytest.raises(InvalidStory) as caught:
        parse_story(_with(field, value), "story.json")
    message = str(caught.value)
    assert f"story.json: {where}: " in message
    assert code in message
    message.encode("utf-8")          # printable: no lone surrogate in the reason itself


def test_a_story_file_with_a_noncharacter_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"x")
    story_file = tmp_path / "story.json"
    doc = _with("assets.0.caption", "Bà Tâm\ud83d")       # JSON can escape a lone surrogate
    doc["assets"][0]["file"] = "a.jpg"
    story_file.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(InvalidStory, match=r"story.json: assets\[0\]\.caption: .*U\+D83D"):
        load_story(story_file)


def test_tabs_and_new_lines_and_private_use_stay_allowed() -> None:
    story = parse_story(_with("assets.0.caption", "Dòng một\nDòng hai\tcột \ue000 \U0001f600"))
    assert story.assets[0].caption == "Dòng một\nDòng hai\tcột \ue000 \U0001f600"


@pytest.mark.parametrize(("srt", "reason"), [
    ("1\n00:00:03,000 --> 00:00:01,000\nngược\n", r"line 2: the cue ends before it starts"),
    ("1\n00:00:01,000 --> 00:00:02,000\n" + "x" * 300 + "\n", r"line 3: the line is too long"),
    ("chỉ là chữ\n", r"no subtitle cues found"),
    (b"\xff\xfe1\n".decode("latin-1"), r"subtitles must be UTF-8 text"),
], ids=["reversed", "long-line", "no-cues", "not-utf8"])
def test_bad_subtitles_fail_when_the_story_is_loaded(tmp_path: Path, srt: str, reason: str) -> None:
    """They were read only when the clip was rendered, on a worker, after the upload."""
    (tmp_path / "clip.mp4").write_bytes(b"x")
    (tmp_path / "clip.srt").write_bytes(srt.encode("latin-1" if "UTF-8" in reason else "utf-8"))
    story_file = _story_naming(tmp_path, "clip.mp4", subtitles="clip.srt")
    with pytest.raises(InvalidStory) as caught:
        load_story(story_file)
    assert re.search(rf"story.json: assets\[0\]\.subtitles: clip.srt: {reason}", str(caught.value))


def test_subtitle_limits_apply_when_the_story_is_loaded(tmp_path: Path) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"x")
    (tmp_path / "clip.srt").write_text("1\n00:00:01,000 --> 00:00:02,000\nMột\n\n"
                                       "2\n00:00:03,000 --> 00:00:04,000\nHai\n", encoding="utf-8")
    story_file = _story_naming(tmp_path, "clip.mp4", subtitles="clip.srt")
    assert load_story(story_file).assets[0].subtitles == "clip.srt"
    with pytest.raises(InvalidStory, match=r"clip.srt: line 6: too many cues \(up to 1 are accepted\)"):
        load_story(story_file, subtitle_limits=SubtitleLimits(max_cues=1))
