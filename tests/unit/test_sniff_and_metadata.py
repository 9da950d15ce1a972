"""Content sniffing and the metadata writers, byte by byte."""

from __future__ import annotations

import struct

import pytest

from pipeline.errors import RenderError, UnsupportedMedia
from pipeline.ingest.sniff import sniff_bytes
from pipeline.model.embedded_text import EmbeddedText
from pipeline.render.image.metadata import app13_segment, build_iptc, build_xmp, insert_app13


@pytest.mark.parametrize(("head", "kind", "fmt"), [
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image", "JPEG"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "image", "PNG"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image", "WEBP"),
    (b"II*\x00\x08\x00\x00\x00", "image", "TIFF"),
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "image", "HEIF"),
    (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1", "image", "AVIF"),
    (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41", "video", "mp4"),
    (b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  ", "video", "mov"),
    (b"\x1a\x45\xdf\xa3\x01\x00\x00\x00", "video", "matroska"),
    (b"\x06\x0e\x2b\x34\x02\x05\x01\x01\x0d\x01\x02\x01", "video", "mxf"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio", "wav"),
    (b"ID3\x04\x00\x00\x00\x00", "audio", "mp3"),
])
def test_sniff_by_content(head: bytes, kind: str, fmt: str) -> None:
    sniffed = sniff_bytes(head + b"\x00" * 32)
    assert (sniffed.kind, sniffed.format) == (kind, fmt)


@pytest.mark.parametrize(("head", "words"), [
    (b"#EXTM3U\n#EXT-X-VERSION:3\n", "playlist"),
    ("\ufeff#EXTM3U\n".encode(), "playlist"),
    (b"ffconcat version 1.0\nfile '/etc/passwd'\n", "concat script"),
    ("Biên bản họp giao ban sáng thứ Hai, tuần 37".encode(), "text file"),
    (b"<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg'/>", "text file"),
    (b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09", "unknown file type"),
])
def test_sniff_refuses_what_is_not_media(head: bytes, words: str) -> None:
    with pytest.raises(UnsupportedMedia, match=words):
        sniff_bytes(head)


TEXT = EmbeddedText(caption="Bà Lê Thị Minh Tâm & <Phú Sơn>", byline="Đình Hà – Đức Anh",
                    credit="Đình Hà", copyright="Thanh Hoa Radio and Television",
                    created="2023-09-12T21:15:00+07:00")


def _records(iptc: bytes) -> dict[tuple[int, int], bytes]:
    out, pos = {}, 0
    while pos < len(iptc):
        marker, record, dataset, length = struct.unpack(">BBBH", iptc[pos:pos + 5])
        assert marker == 0x1C
        out[(record, dataset)] = iptc[pos + 5:pos + 5 + length]
        pos += 5 + length
    return out


def test_iptc_declares_utf8_and_keeps_vietnamese() -> None:
    records = _records(build_iptc(TEXT))
    assert records[(1, 90)] == b"\x1b%G"
    assert records[(2, 120)].decode("utf-8") == TEXT.caption
    assert records[(2, 80)].decode("utf-8") == TEXT.byline
    assert records[(2, 110)].decode("utf-8") == TEXT.credit
    assert records[(2, 55)] == b"20230912"


def test_iptc_cuts_long_values_at_a_character_boundary() -> None:
    records = _records(build_iptc(EmbeddedText(byline="Đình Hà – Đức Anh – Nguyễn Thị Thu Hường")))
    byline = records[(2, 80)]
    assert len(byline) <= 32
    assert byline.decode("utf-8")  # no broken character


def test_app13_goes_after_the_app_segments() -> None:
    jpeg = b"\xff\xd8" + b"\xff\xe0\x00\x04ab" + b"\xff\xe1\x00\x04cd" + b"\xff\xdb\x00\x02"
    segment = app13_segment(build_iptc(TEXT))
    out = insert_app13(jpeg, segment)
    assert out.startswith(b"\xff\xd8\xff\xe0\x00\x04ab\xff\xe1\x00\x04cd\xff\xed")
    assert out.endswith(b"\xff\xdb\x00\x02")
    assert segment[4:18] == b"Photoshop 3.0\x00"


def test_app13_failures_are_render_errors() -> None:
    with pytest.raises(RenderError, match="not a JPEG stream"):
        insert_app13(b"\x89PNG\r\n\x1a\n", app13_segment(build_iptc(TEXT)))
    with pytest.raises(RenderError, match="too large for one APP13 segment"):
        app13_segment(b"\x1c" * 0xFFFF)


def test_xmp_escapes_and_keeps_text() -> None:
    xmp = build_xmp(TEXT).decode("utf-8")
    assert "Bà Lê Thị Minh Tâm &amp; &lt;Phú Sơn&gt;" in xmp
    assert "<photoshop:Credit>Đình Hà</photoshop:Credit>" in xmp
    assert 'xmpRights:Marked="True"' in xmp
