"""Embedded metadata: caption, byline, credit and copyright as XMP and IPTC-IIM; a safe EXIF.

- XMP (``dc:description``, ``dc:creator``, ``photoshop:Credit``, ``dc:rights`` ...) goes into
  JPEG, WebP and AVIF; it is UTF-8 by definition.
- IPTC-IIM goes into JPEG only (APP13 "Photoshop 3.0" 8BIM resource 0x0404) with record 1:90
  set to ``ESC % G`` so readers decode UTF-8. WebP and AVIF have no IIM container.
- EXIF is rebuilt from an allow-list (capture date, camera make/model, exposure): GPS, serial
  numbers, maker notes and the orientation tag never reach a rendition.

Written here rather than with pyexiv2 (GPLv3) so the project stays MIT; exiftool reads it back.
"""

from __future__ import annotations

import struct
from xml.sax.saxutils import escape

from PIL import Image

from pipeline.errors import RenderError
from pipeline.model.embedded_text import EmbeddedText


def _attr(text: str) -> str:
    return escape(text, {'"': "&quot;"})


def build_xmp(text: EmbeddedText) -> bytes:
    """An XMP packet with Dublin Core, Photoshop and IPTC Core properties."""
    parts = []
    if text.caption:
        parts.append(
            "<dc:description><rdf:Alt>"
            f'<rdf:li xml:lang="x-default">{escape(text.caption)}</rdf:li>'
            "</rdf:Alt></dc:description>")
    if text.headline:
        parts.append(
            "<dc:title><rdf:Alt>"
            f'<rdf:li xml:lang="x-default">{escape(text.headline)}</rdf:li>'
            "</rdf:Alt></dc:title>")
        parts.append(f"<photoshop:Headline>{escape(text.headline)}</photoshop:Headline>")
    if text.byline:
        parts.append(f"<dc:creator><rdf:Seq><rdf:li>{escape(text.byline)}</rdf:li></rdf:Seq></dc:creator>")
    if text.copyright:
        parts.append(
            "<dc:rights><rdf:Alt>"
            f'<rdf:li xml:lang="x-default">{escape(text.copyright)}</rdf:li>'
            "</rdf:Alt></dc:rights>")
    if text.language:
        parts.append(f"<dc:language><rdf:Bag><rdf:li>{escape(text.language)}</rdf:li></rdf:Bag></dc:language>")
    if text.credit:
        parts.append(f"<photoshop:Credit>{escape(text.credit)}</photoshop:Credit>")
    if text.source:
        parts.append(f"<photoshop:Source>{escape(text.source)}</photoshop:Source>")
    if text.created:
        parts.append(f"<photoshop:DateCreated>{escape(text.created)}</photoshop:DateCreated>")
    body = "".join(parts)
    packet = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about=""'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/"'
        ' xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"'
        ' xmlns:xmpRights="http://ns.adobe.com/xap/1.0/rights/"'
        f' xmpRights:Marked="{"True" if text.copyright else "False"}">'
        f"{body}</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>')
    return packet.encode("utf-8")


# IIM dataset numbers (record 2) and their maximum lengths in bytes (IPTC IIM 4.2).
_IIM_FIELDS = (
    ("caption", 120, 2000),
    ("byline", 80, 32),
    ("credit", 110, 32),
    ("source", 115, 32),
    ("copyright", 116, 128),
    ("headline", 105, 256),
)


def _truncate_utf8(text: str, limit: int) -> bytes:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return data
    return data[:limit].decode("utf-8", errors="ignore").encode("utf-8")


def _iim(record: int, dataset: int, value: bytes) -> bytes:
    return struct.pack(">BBBH", 0x1C, record, dataset, len(value)) + value


def build_iptc(text: EmbeddedText) -> bytes:
    """IPTC-IIM records, UTF-8 declared by 1:90. Long values are cut at a character boundary."""
    out = [_iim(1, 90, b"\x1b%G"), _iim(2, 0, b"\x00\x04")]
    for attr, dataset, limit in _IIM_FIELDS:
        value = getattr(text, attr)
        if value:
            out.append(_iim(2, dataset, _truncate_utf8(value, limit)))
    if text.created[:10].count("-") == 2:
        out.append(_iim(2, 55, text.created[:10].replace("-", "").encode("ascii")))
    return b"".join(out)


def app13_segment(iptc: bytes) -> bytes:
    """A JPEG APP13 segment holding ``iptc`` as Photoshop image resource 0x0404; RenderError when
    it does not fit in one segment."""
    resource = b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00" + struct.pack(">I", len(iptc)) + iptc
    if len(iptc) % 2:
        resource += b"\x00"
    payload = b"Photoshop 3.0\x00" + resource
    if len(payload) + 2 > 0xFFFF:
        raise RenderError("IPTC block too large for one APP13 segment")
    return b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload


def insert_app13(jpeg: bytes, segment: bytes) -> bytes:
    """Insert an APP13 segment after the leading APPn segments of an encoded JPEG; RenderError when
    ``jpeg`` is not one."""
    if not jpeg.startswith(b"\xff\xd8"):
        raise RenderError("not a JPEG stream")
    pos = 2
    while pos + 4 <= len(jpeg) and jpeg[pos] == 0xFF and 0xE0 <= jpeg[pos + 1] <= 0xEF:
        (length,) = struct.unpack(">H", jpeg[pos + 2 : pos + 4])
        pos += 2 + length
    return jpeg[:pos] + segment + jpeg[pos:]


# EXIF tags kept from the source (everything else, GPS and serials included, is dropped).
_KEEP_IFD0 = {0x010F: "Make", 0x0110: "Model", 0x0131: "Software"}
_KEEP_EXIF = {
    0x9003: "DateTimeOriginal", 0x9004: "DateTimeDigitized", 0x829A: "ExposureTime",
    0x829D: "FNumber", 0x8827: "ISOSpeedRatings", 0x920A: "FocalLength",
    0xA434: "LensModel", 0x9010: "OffsetTime", 0x9011: "OffsetTimeOriginal",
}
_EXIF_IFD = 0x8769


def safe_exif(source: Image.Exif | None) -> bytes:
    """EXIF with only the allow-listed tags; empty bytes when nothing is worth keeping."""
    if source is None:
        return b""
    out = Image.Exif()
    for tag in _KEEP_IFD0:
        if tag in source and isinstance(source[tag], str):
            out[tag] = source[tag]
    sub = source.get_ifd(_EXIF_IFD)
    kept = {tag: sub[tag] for tag in _KEEP_EXIF if tag in sub}
    if kept:
        out[_EXIF_IFD] = kept
    if not len(out) and not kept:
        return b""
    return out.tobytes()
