"""Probe an asset: what it is, how big, which way up, before any pixel is decoded.

Bad input stops here with a reason a producer understands. Only the header is read for images
(Pillow opens lazily); the full decode happens once, in :mod:`pipeline.render.image.ladder`. Before
Pillow looks at a JPEG its marker segments are walked (bounded in count, at C speed over the bytes)
so that a file of thousands of scans is refused here instead of decoding for minutes; and every
image is refused when decoding it would need more memory than :attr:`Limits.max_decoded_bytes`,
however few pixels it claims.
"""

from __future__ import annotations

import math
import mmap
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from pipeline.errors import ProbeError, UnsupportedMedia
from pipeline.ingest.avprobe import probe_av
from pipeline.ingest.decode import open_image, working_bytes
from pipeline.ingest.info import AVInfo, ImageInfo
from pipeline.ingest.limits import Limits
from pipeline.ingest.sniff import Sniffed, sniff

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


_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
"""A JPEG marker: 0xFF then a code that is neither a stuffed zero, a restart marker nor fill."""
_SOF = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF))
_PROGRESSIVE = frozenset((0xC2, 0xC6, 0xCA, 0xCE))
_STANDALONE = frozenset((0x01, 0xD8))
_COEFFICIENT_BLOCK = 64 * 2
"""A decoder keeps 64 two-byte DCT coefficients per 8x8 block of each component."""


@dataclass(frozen=True)
class JpegLayout:
    """What the marker walk learned: how many scans, and the frame's component sampling."""

    scans: int
    progressive: bool
    sampling: tuple[tuple[int, int], ...]
    """(horizontal, vertical) sampling factor of each component, from the frame header."""

    def coefficient_bytes(self, width: int, height: int) -> int:
        """The whole-image coefficient buffer libjpeg holds while it reads a multi-scan JPEG (a
        single-scan baseline JPEG needs one row of blocks instead): DCT scaling does not shrink it."""
        if not self.sampling or (self.scans <= 1 and not self.progressive):
            return 0
        h_max = max(h for h, _v in self.sampling) or 1
        v_max = max(v for _h, v in self.sampling) or 1
        total = 0
        for h, v in self.sampling:
            blocks_w = math.ceil(math.ceil(width * h / h_max) / 8)
            blocks_h = math.ceil(math.ceil(height * v / v_max) / 8)
            total += (math.ceil(blocks_w / max(h, 1)) * max(h, 1)
                      * math.ceil(blocks_h / max(v, 1)) * max(v, 1))
        return total * _COEFFICIENT_BLOCK


def jpeg_layout(path: Path, limits: Limits) -> JpegLayout:
    """Walk a JPEG's marker segments to its first EOI: count scans and read the frame header.

    Segment headers are hopped by their lengths; entropy-coded data after each SOS is skipped by one
    regular-expression search (C speed, no Python loop over the bytes). The walk stops at
    :attr:`Limits.max_jpeg_segments` segments or past :attr:`Limits.max_jpeg_scans` scans and refuses
    the file; a damaged file just ends the walk (Pillow judges it next).
    """
    scans = segments = 0
    progressive = False
    sampling: tuple[tuple[int, int], ...] = ()
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        pos = 2   # after SOI (sniff checked it)
        while True:
            found = _MARKER.search(data, pos)
            if found is None:
                break
            marker = data[found.start() + 1]
            segments += 1
            if segments > limits.max_jpeg_segments:
                raise UnsupportedMedia(
                    f"the JPEG has more than {limits.max_jpeg_segments} marker segments (real photos"
                    " have a few dozen); save it again as a normal JPEG and upload that",
                    code="too-many-segments")
            if marker == 0xD9:
                break
            if marker in _STANDALONE:
                pos = found.end()
                continue
            header = data[found.end():found.end() + 2]
            if len(header) < 2:
                break
            end = found.end() + int.from_bytes(header, "big")
            if marker in _SOF and not sampling:
                progressive = marker in _PROGRESSIVE
                count = data[found.end() + 7] if end > found.end() + 7 else 0
                body = data[found.end() + 8:min(end, found.end() + 8 + 3 * count)]
                sampling = tuple((byte >> 4, byte & 0x0F) for byte in body[1::3])
            elif marker == 0xDA:
                scans += 1
                if scans > limits.max_jpeg_scans:
                    raise UnsupportedMedia(
                        f"the JPEG has more than {limits.max_jpeg_scans} scans (progressive passes;"
                        " cameras and editors write about 10), so decoding it would take minutes;"
                        " save it again as a normal JPEG and upload that", code="too-many-scans")
            pos = end
    return JpegLayout(scans=scans, progressive=progressive, sampling=sampling)


_DECODER_BYTES_PER_PIXEL = {"WEBP": 12, "AVIF": 6, "HEIF": 6}
"""Output buffers these decoders fill before Pillow copies the picture (measured: libwebp's RGBA
buffer is copied twice on its way into Pillow; libavif and libheif keep YCbCr planes and RGB)."""


_ALPHA_MODES = frozenset(("RGBA", "LA", "PA", "RGBa", "La"))


def _tiff_strip_bytes(img: Image.Image) -> int:
    """The buffer libtiff decodes one strip or tile into: a whole-picture strip needs it all."""
    tags = getattr(img, "tag_v2", {})
    width, height = img.size
    samples = int(tags.get(277, 1) or 1)
    bits = tags.get(258, (8,))
    depth = max(int(b) for b in (bits if isinstance(bits, tuple) else (bits,))) if bits else 8
    sample_bytes = max(4, samples * math.ceil(depth / 8))
    if 322 in tags and 323 in tags:
        return int(tags[322]) * int(tags[323]) * sample_bytes
    rows = min(height, int(tags.get(278, height) or height))
    return rows * width * sample_bytes


def _decoder_bytes(img: Image.Image, fmt: str, layout: JpegLayout | None) -> int:
    width, height = img.size
    if layout is not None:
        return layout.coefficient_bytes(width, height)
    if fmt == "TIFF":
        return _tiff_strip_bytes(img)
    return _DECODER_BYTES_PER_PIXEL.get(fmt, 0) * width * height


def probe_image(path: Path, sniffed: Sniffed, limits: Limits) -> ImageInfo:
    size = path.stat().st_size
    if size > limits.max_image_bytes:
        raise UnsupportedMedia(
            f"the file is too large ({size / 1e6:.0f} MB; photos up to"
            f" {limits.max_image_bytes / 1e6:.0f} MB are accepted)", code="too-large")
    layout = jpeg_layout(path, limits) if sniffed.format == "JPEG" and size > 2 else None
    # Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that: align it with our cap.
    Image.MAX_IMAGE_PIXELS = limits.max_image_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with open_image(path, sniffed.format) as img:
                stored_w, stored_h = img.size
                mode = img.mode
                orientation = _orientation(img)
                decoder = _decoder_bytes(img, sniffed.format, layout)
                alpha = mode in _ALPHA_MODES or (mode == "P" and "transparency" in img.info)
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
    if orientation not in range(1, 9):
        orientation = 1
    needed = working_bytes(mode, (stored_w, stored_h), orientation, decoder, alpha)
    if needed > limits.max_decoded_bytes:
        raise UnsupportedMedia(
            f"decoding this photo would need about {needed / 2**20:.0f} MB of memory ({stored_w}x"
            f"{stored_h}, {_describe_mode(mode, layout)}); the limit is"
            f" {limits.max_decoded_bytes / 2**20:.0f} MB: export it with fewer pixels, as 8-bit"
            " (or as a baseline JPEG) and upload that", code="too-much-memory")
    if not _tail_complete(path, sniffed.format, size):
        raise ProbeError("the file is truncated (it ends before the image does); upload it again",
                         code="truncated")
    width, height = (stored_h, stored_w) if orientation >= 5 else (stored_w, stored_h)
    return ImageInfo(format=sniffed.format, mime=sniffed.mime, width=width, height=height,
                     stored_width=stored_w, stored_height=stored_h, orientation=orientation,
                     mode=mode, bytes=size)


def _describe_mode(mode: str, layout: JpegLayout | None) -> str:
    """The stored pixel format in a producer's words."""
    words = {"I;16": "16-bit grey", "I;16B": "16-bit grey", "I;16L": "16-bit grey", "I;16N": "16-bit grey",
             "I": "32-bit grey", "F": "32-bit floating-point grey", "CMYK": "CMYK", "L": "grey",
             "LA": "grey with alpha", "P": "palette", "PA": "palette with alpha", "1": "black and white",
             "RGBA": "colour with alpha"}.get(mode, "colour")
    if layout is not None and (layout.progressive or layout.scans > 1):
        words = f"progressive {words}"
    return words


MediaInfo = ImageInfo | AVInfo


def probe(path: Path, limits: Limits) -> MediaInfo:
    """Sniff and probe one asset file. Raises UnsupportedMedia or ProbeError on bad input."""
    sniffed = sniff(path)
    if sniffed.kind == "image":
        return probe_image(path, sniffed, limits)
    return probe_av(path, sniffed, limits.av)
