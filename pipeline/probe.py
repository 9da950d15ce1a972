"""Probe an asset: what it is, how big, which way up, before any pixel is decoded.

Bad input stops here with a reason a producer understands. Only the header is read for images
(Pillow opens lazily); the full decode happens once, in :mod:`pipeline.image`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from pipeline.avprobe import AVInfo, AVLimits, probe_av
from pipeline.decode import open_image
from pipeline.errors import ProbeError, UnsupportedMedia
from pipeline.sniff import Sniffed, sniff


@dataclass(frozen=True)
class Limits:
    """Caps against hostile or accidental giant input."""

    max_image_bytes: int = 200 * 1024 * 1024
    max_image_pixels: int = 120_000_000
    """120 MP: above any camera a newsroom uses, far below a decompression bomb."""
    av: AVLimits = field(default_factory=AVLimits)
    """Caps for clips and audio."""


@dataclass(frozen=True)
class ImageInfo:
    """What a still image is, read from its header."""

    format: str
    mime: str
    width: int
    """Display width: after EXIF orientation."""
    height: int
    stored_width: int
    stored_height: int
    orientation: int
    mode: str
    bytes: int

    @property
    def kind(self) -> str:
        return "image"


_ORIENTATION_TAG = 0x0112


def _orientation(img: Image.Image) -> int:
    """EXIF orientation from the header. PNG keeps EXIF anywhere in the file and Pillow would
    decode every pixel to look for it after the image data: only a header eXIf chunk counts."""
    if img.format == "PNG" and "exif" not in img.info:
        return 1
    return int(img.getexif().get(_ORIENTATION_TAG, 1) or 1)


def _tail_complete(path: Path, fmt: str, size: int) -> bool:
    """Cheap truncation check: JPEG must end in EOI, PNG must hold IEND near its end."""
    marker = {"JPEG": b"\xff\xd9", "PNG": b"IEND"}.get(fmt)
    if marker is None:
        return True
    with path.open("rb") as handle:
        handle.seek(max(0, size - 65536))
        tail = handle.read()
    return marker in tail


def probe_image(path: Path, sniffed: Sniffed, limits: Limits) -> ImageInfo:
    size = path.stat().st_size
    if size > limits.max_image_bytes:
        raise UnsupportedMedia(
            f"the file is too large ({size / 1e6:.0f} MB; photos up to"
            f" {limits.max_image_bytes / 1e6:.0f} MB are accepted)", code="too-large")
    # Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that: align it with our cap.
    Image.MAX_IMAGE_PIXELS = limits.max_image_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with open_image(path, sniffed.format) as img:
                stored_w, stored_h = img.size
                mode = img.mode
                orientation = _orientation(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnsupportedMedia(
            f"the image claims too many pixels (a decompression bomb?); the limit is"
            f" {limits.max_image_pixels / 1e6:.0f} MP", code="too-many-pixels") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ProbeError(
            f"the file looks like {sniffed.format} but cannot be read: it is corrupt or"
            f" truncated ({exc})", code="corrupt") from exc
    if stored_w * stored_h > limits.max_image_pixels:
        raise UnsupportedMedia(
            f"the image has too many pixels ({stored_w}x{stored_h} ="
            f" {stored_w * stored_h / 1e6:.0f} MP; the limit is"
            f" {limits.max_image_pixels / 1e6:.0f} MP)", code="too-many-pixels")
    if not _tail_complete(path, sniffed.format, size):
        raise ProbeError("the file is truncated (it ends before the image does); upload it again",
                         code="truncated")
    if orientation not in range(1, 9):
        orientation = 1
    width, height = (stored_h, stored_w) if orientation >= 5 else (stored_w, stored_h)
    return ImageInfo(format=sniffed.format, mime=sniffed.mime, width=width, height=height,
                     stored_width=stored_w, stored_height=stored_h, orientation=orientation,
                     mode=mode, bytes=size)


MediaInfo = ImageInfo | AVInfo


def probe(path: Path, limits: Limits) -> MediaInfo:
    """Sniff and probe one asset file. Raises UnsupportedMedia or ProbeError on bad input."""
    sniffed = sniff(path)
    if sniffed.kind == "image":
        return probe_image(path, sniffed, limits)
    return probe_av(path, sniffed, limits.av)
