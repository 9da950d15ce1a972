"""Subtitle parsing and WebVTT writing; HLS playlists from fragmented MP4 boxes."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from pipeline import hls
from pipeline.errors import InvalidStory
from pipeline.subtitles import parse, webvtt

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
