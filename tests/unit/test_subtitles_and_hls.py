"""Subtitle parsing and WebVTT writing; HLS playlists from fragmented MP4 boxes."""

from __future__ import annotations

import struct
import tracemalloc
from pathlib import Path

import pytest

from pipeline.errors import InvalidStory
from pipeline.model.subtitles import LIMITS, SubtitleLimits, load, parse, webvtt
from pipeline.render.av import hls
from pipeline.render.graphics import text

SRT = """1
00:00:01,000 --> 00:00:03,500
<i>Bà Lê Thị Minh Tâm</i>: "50%" {x} \\N

2
00:00:04,000 --> 00:00:06,000
Dòng một
dòng hai & <tag>
"""

VTT = """WEBVTT

00:01.000 --> 00:02.000 align:start
Xin chào

01:00:00.500 --> 01:00:01.000
Kết thúc
"""


def test_srt_is_parsed_tags_removed_text_literal() -> None:
    cues = parse(SRT)
    assert [(c.start, c.end) for c in cues] == [(1.0, 3.5), (4.0, 6.0)]
    assert cues[0].text == 'Bà Lê Thị Minh Tâm: "50%" {x} \\N'
    assert cues[1].text == "Dòng một\ndòng hai & <tag>"


def test_vtt_with_settings_and_hours() -> None:
    cues = parse(VTT)
    assert [(c.start, c.end, c.text) for c in cues] == [(1.0, 2.0, "Xin chào"), (3600.5, 3601.0, "Kết thúc")]


def test_webvtt_escapes_markup_and_round_trips() -> None:
    text = webvtt(parse(SRT))
    assert text.startswith("WEBVTT")
    assert "dòng hai &amp; &lt;tag&gt;" in text
    assert [(c.start, c.end) for c in parse(text)] == [(1.0, 3.5), (4.0, 6.0)]


@pytest.mark.parametrize(("text", "words"), [
    ("1\n00:00:03,000 --> 00:00:01,000\nngược\n", "ends before it starts"),
    ("just some words\n", "no subtitle cues"),
])
def test_bad_subtitles(text: str, words: str) -> None:
    with pytest.raises(InvalidStory, match=words):
        parse(text, "clip.srt")


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def full(kind: bytes, version: int, flags: int, payload: bytes) -> bytes:
    return box(kind, bytes([version]) + flags.to_bytes(3, "big") + payload)


def fragment(track: int, base: int, sizes: list[int], duration: int) -> bytes:
    tfhd = full(b"tfhd", 0, 0x020008, struct.pack(">II", track, duration))
    tfdt = full(b"tfdt", 1, 0, struct.pack(">Q", base))
    entries = b"".join(struct.pack(">I", s) for s in sizes)
    trun_len = 8 + 4 + 4 + 4 * len(sizes) + 4
    moof_len = 8 + 8 + len(tfhd) + len(tfdt) + trun_len
    trun = full(b"trun", 0, 0x000201, struct.pack(">Ii", len(sizes), moof_len + 8) + entries)
    moof = box(b"moof", box(b"traf", tfhd + tfdt + trun))
    assert len(moof) == moof_len
    return moof + box(b"mdat", b"\x00" * sum(sizes))


def test_hls_segments_and_iframe_byte_ranges(tmp_path: Path) -> None:
    tkhd = full(b"tkhd", 0, 3, b"\x00" * 8 + struct.pack(">I", 1) + b"\x00" * 68)
    mdhd = full(b"mdhd", 0, 0, b"\x00" * 8 + struct.pack(">I", 25) + b"\x00" * 8)
    hdlr = full(b"hdlr", 0, 0, b"\x00" * 4 + b"vide" + b"\x00" * 13)
    trak = box(b"trak", tkhd + box(b"mdia", mdhd + hdlr))
    init = box(b"ftyp", b"iso6\x00\x00\x00\x00") + box(b"moov", trak)
    frags = [fragment(1, 50 * i, [1000 + i] + [10] * 49, 1) for i in range(4)]
    source = tmp_path / "rung.mp4"
    source.write_bytes(init + b"".join(frags))
    rung = hls.read_rung("360p", source, 640, 360, 25.0)
    assert [f.duration for f in rung.fragments] == [2.0] * 4
    written = hls.package([rung], tmp_path / "out", per_segment=3)
    names = [w.name for w in written]
    assert names == ["360p/init.mp4", "360p/seg_0000.m4s", "360p/seg_0001.m4s", "360p/index.m3u8",
                     "360p/iframes.m3u8", "master.m3u8"]
    assert (tmp_path / "out/360p/init.mp4").read_bytes() == init
    media = (tmp_path / "out/360p/index.m3u8").read_text()
    assert "#EXTINF:6.000,\nseg_0000.m4s" in media and "#EXTINF:2.000,\nseg_0001.m4s" in media
    assert "#EXT-X-TARGETDURATION:6" in media
    iframes = (tmp_path / "out/360p/iframes.m3u8").read_text()
    first = len(frags[0]) - 49 * 10      # moof + mdat header + the 1000-byte I-frame
    assert f"#EXT-X-BYTERANGE:{first}@0\nseg_0000.m4s" in iframes
    assert f"@{len(frags[0])}\nseg_0000.m4s" in iframes
    master = (tmp_path / "out/master.m3u8").read_text()
    assert 'URI="360p/iframes.m3u8"' in master and "RESOLUTION=640x360" in master


def _srt(count: int, text: str = "Xin chào") -> str:
    return "".join(f"{i + 1}\n00:{i // 6000 % 60:02d}:{i // 100 % 60:02d},{i % 100 * 10:03d} --> "
                   f"00:{i // 6000 % 60:02d}:{i // 100 % 60:02d},{i % 100 * 10 + 5:03d}\n{text}\n\n"
                   for i in range(count))


def test_the_cue_count_is_capped_and_the_cue_past_it_named() -> None:
    assert len(parse(_srt(LIMITS.max_cues))) == LIMITS.max_cues
    with pytest.raises(InvalidStory, match=rf"clip.srt: line {4 * LIMITS.max_cues + 2}: too many cues \(up to 5000"):
        parse(_srt(LIMITS.max_cues + 1), "clip.srt")


@pytest.mark.parametrize(("body", "line", "words"), [
    ("x" * 201, 3, r"the line is too long \(201 characters; up to 200"),
    ("\n".join(["một dòng"] * 9), 2, r"the cue is too long \(more than 8 lines or 400 characters\)"),
    ("\n".join(["x" * 150] * 3), 2, "the cue is too long"),
    ("<i>" + "ệ" * 8000 + "</i>", 3, "the line is too long"),
])
def test_long_cues_and_lines_are_refused_with_the_line(body: str, line: int, words: str) -> None:
    with pytest.raises(InvalidStory, match=rf"clip.srt: line {line}: {words}"):
        parse(f"1\n00:00:01,000 --> 00:00:02,000\n{body}\n", "clip.srt")


def test_limits_are_settings() -> None:
    tight = SubtitleLimits(max_cues=2, max_cue_chars=10, max_line_chars=5, max_cue_lines=1)
    with pytest.raises(InvalidStory, match="up to 2 are accepted"):
        parse(_srt(3, "ok"), "clip.srt", tight)
    with pytest.raises(InvalidStory, match="up to 5 are accepted"):
        parse(_srt(1, "123456"), "clip.srt", tight)
    assert [c.text for c in parse(_srt(2, "12345"), "clip.srt", tight)] == ["12345", "12345"]


def test_a_huge_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """A 1 GiB .srt was read whole before its size was checked."""
    huge = tmp_path / "huge.srt"
    with huge.open("wb") as handle:
        handle.truncate(1024**3)              # sparse: no disk used
    tracemalloc.start()
    try:
        with pytest.raises(InvalidStory, match=r"huge.srt: the subtitle file is too large \(1073.7 MB; up to 2.1 MB"):
            load(huge, "huge.srt")
        _size, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * 1024**2


def test_a_file_at_the_limit_is_read(tmp_path: Path) -> None:
    srt = _srt(3).encode()
    exact = tmp_path / "exact.srt"
    exact.write_bytes(srt + b"\n" * (LIMITS.max_bytes - len(srt)))
    assert len(load(exact, "exact.srt")) == 3
    with exact.open("ab") as handle:
        handle.write(b"\n")
    with pytest.raises(InvalidStory, match="too large"):
        load(exact, "exact.srt")


class CountingFace:
    """A font stand-in for pure layout tests: 10 px a character; counts what was measured."""

    def __init__(self) -> None:
        self.calls = 0
        self.measured = 0

    def getlength(self, text: str) -> float:
        self.calls += 1
        self.measured += len(text)
        return 10.0 * len(text)


def test_a_long_word_is_cut_by_bisection() -> None:
    """One 8,000-character word took 5 s per picture size: a character cut per measurement."""
    face = CountingFace()
    lines = text.wrap("ệ" * 8000, face, 1000, 3)          # type: ignore[arg-type]
    assert lines == ["ệ" * 99 + "…"]
    assert face.calls < 20 and face.measured < 20 * 8000


def test_too_many_lines_end_in_an_ellipsis_cheaply() -> None:
    face = CountingFace()
    lines = text.wrap(" ".join(["từ"] * 4000), face, 200, 2)     # type: ignore[arg-type]
    assert lines == [" ".join(["từ"] * 7), " ".join(["từ"] * 6) + " …"]   # 200 px: 7 words, or 6 and " …"
    assert face.calls < 100


def test_a_cut_never_strands_a_combining_mark() -> None:
    decomposed = "e\u0323\u0302" * 40              # ệ as e and two marks (a lower third's own text)
    # 81 px holds 7 characters and the ellipsis: the 8th is a mark, so its letter goes too.
    assert text._fit(decomposed, CountingFace(), 81) == "e\u0323\u0302" * 2 + "…"   # type: ignore[arg-type]
    assert text._fit(decomposed, CountingFace(), 91) == "e\u0323\u0302" * 2 + "…"   # type: ignore[arg-type]
    assert text._fit(decomposed, CountingFace(), 101) == "e\u0323\u0302" * 3 + "…"  # type: ignore[arg-type]
