"""Tell what a file really is from its first bytes, whatever its name says.

Names lie (a text file called ``photo.jpg``, a playlist called ``clip.mp4``); the content decides
which reader may open it. Anything not recognised is refused here, before a decoder sees it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipeline.errors import ProbeError, UnsupportedMedia

Kind = Literal["image", "video", "audio"]


@dataclass(frozen=True)
class Sniffed:
    kind: Kind
    format: str
    """Pillow format name for images (``JPEG``, ``PNG``, ...), container family otherwise."""
    mime: str


_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}
_QT_BRANDS = {b"qt  "}
_HEAD = 64


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character cut at the end of the sample is still text.
        try:
            head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    printable = sum(1 for b in head if b >= 0x20 or b in b"\t\r\n")
    return printable / len(head) > 0.95


def sniff_bytes(head: bytes) -> Sniffed:
    """Classify by the first bytes of a file (at least 32 are needed for most formats)."""
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("image", "JPEG", "image/jpeg")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image", "PNG", "image/png")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed("image", "WEBP", "image/webp")
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return Sniffed("image", "TIFF", "image/tiff")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed("image", "GIF", "image/gif")
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        compatible = {head[i : i + 4] for i in range(16, min(len(head), 48), 4)}
        if brand in _AVIF_BRANDS:
            return Sniffed("image", "AVIF", "image/avif")
        if brand in _HEIF_BRANDS or (brand not in _QT_BRANDS and compatible & _HEIF_BRANDS
                                     and b"isom" not in compatible):
            return Sniffed("image", "HEIF", "image/heic")
        if brand in _QT_BRANDS:
            return Sniffed("video", "mov", "video/quicktime")
        if brand in (b"M4A ", b"M4B "):
            return Sniffed("audio", "mp4", "audio/mp4")
        return Sniffed("video", "mp4", "video/mp4")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return Sniffed("video", "matroska", "video/x-matroska")
    if head.startswith(b"\x06\x0e\x2b\x34\x02\x05\x01\x01\x0d\x01\x02"):
        return Sniffed("video", "mxf", "application/mxf")
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return Sniffed("audio", "wav", "audio/wav")
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return Sniffed("audio", "mp3", "audio/mpeg")
    if head.startswith(b"fLaC"):
        return Sniffed("audio", "flac", "audio/flac")

    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"#EXTM3U"):
        raise UnsupportedMedia("this is a playlist (M3U/HLS), not a media file", code="playlist")
    if text.startswith((b"ffconcat", b"file ", b"file'")):
        raise UnsupportedMedia("this is an ffmpeg concat script, not a media file", code="playlist")
    if _looks_like_text(head):
        raise UnsupportedMedia("this is a text file, not a photo, video or audio file",
                               code="not-media")
    raise UnsupportedMedia("unknown file type: not a photo, video or audio format we accept",
                           code="unknown-type")


def sniff(path: Path) -> Sniffed:
    """Classify ``path`` by content. Empty files are a :class:`ProbeError`."""
    try:
        with path.open("rb") as handle:
            head = handle.read(_HEAD)
    except OSError as exc:
        raise ProbeError(f"cannot read the file ({exc.strerror})", code="unreadable") from exc
    if not head:
        raise ProbeError("the file is empty (0 bytes)", code="empty")
    return sniff_bytes(head)
