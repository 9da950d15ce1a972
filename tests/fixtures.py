"""Test media made by code, named for their trouble (no binary fixtures in the repo)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

RED = (230, 20, 20)
BLUE = (20, 40, 230)


def photo(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """Smooth colour fields with grain: compresses like a photo, fast to make."""
    rng = np.random.default_rng(seed)
    small = rng.integers(40, 215, (6, 8, 3), dtype=np.uint8)
    base = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
    grain = rng.normal(0, 6, (size[1], size[0], 3))
    return Image.fromarray(np.clip(np.asarray(base, dtype=np.float32) + grain, 0, 255).astype(np.uint8))


def marked(size: tuple[int, int] = (600, 400)) -> Image.Image:
    """Upright picture with a red square top-left and a blue square top-right."""
    img = Image.new("RGB", size, (128, 128, 128))
    w, h = size
    s = min(w, h) // 5
    img.paste(RED, (0, 0, s, s))
    img.paste(BLUE, (w - s, 0, w, s))
    return img


# Pixel transform that, followed by exif_transpose for the given orientation, gives the upright image.
_STORE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def rotated_jpeg(path: Path, orientation: int, size: tuple[int, int] = (600, 400)) -> Path:
    """``rotated-<n>.jpg``: stored sideways, EXIF Orientation=n makes it upright."""
    img = marked(size)
    op = _STORE[orientation]
    stored = img.transpose(op) if op is not None else img
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, "JPEG", quality=95, exif=exif.tobytes())
    return path


def with_gps_and_serial(path: Path, size: tuple[int, int] = (1200, 800)) -> Path:
    """``gps.jpg``: camera EXIF with GPS position and body serial number."""
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "EOS R6"
    exif[0x8769] = {0x9003: "2023:09:12 08:30:00", 0xA431: "0123456789"}
    exif[0x8825] = {1: "N", 2: (19.0, 48.0, 25.0), 3: "E", 4: (105.0, 46.0, 34.0)}
    photo(size, 3).save(path, "JPEG", quality=90, exif=exif.tobytes())
    return path


def pixel_bomb_png(path: Path, width: int = 30000, height: int = 30000) -> Path:
    """``bomb.png``: a tiny file whose header claims ``width`` x ``height`` pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))
    return path


def truncated_jpeg(path: Path) -> Path:
    """``truncated.jpg``: the first half of a good JPEG."""
    good = path.with_name("whole-" + path.name)
    photo((1600, 1200), 5).save(good, "JPEG", quality=90)
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    good.unlink()
    return path


def _jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of every segment up to EOI; a scan's entropy data belongs to its SOS."""
    out, pos = [], 2
    while pos < len(data):
        marker = data[pos + 1]
        if marker == 0xD9:
            out.append((marker, pos, pos + 2))
            break
        end = pos + 2 + struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if marker == 0xDA:   # entropy data runs to the next marker that is not a stuffed 0 or RSTn
            while True:
                end = data.index(b"\xff", end)
                if data[end + 1] not in (0x00, *range(0xD0, 0xD8)):
                    break
                end += 2
        out.append((marker, pos, end))
        pos = end
    return out


def scan_bomb_jpeg(path: Path, scans: int = 3000, size: tuple[int, int] = (4000, 3000)) -> Path:
    """``scan-bomb.jpg``: a progressive JPEG whose last scan (with its Huffman table) is repeated
    until the file holds ``scans`` scans. Each repeat is a few dozen bytes of EOB runs over a flat
    picture, yet the decoder walks every block of the image for it: milliseconds a scan."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (120, 130, 140)).save(buffer, "JPEG", quality=90, progressive=True)
    data = buffer.getvalue()
    segments = _jpeg_segments(data)
    sos = [i for i, (marker, _s, _e) in enumerate(segments) if marker == 0xDA]
    group_start = segments[sos[-2]][2]              # after the previous scan: DHT + SOS + data
    eoi = segments[-1][1]
    group = data[group_start:eoi]
    path.write_bytes(data[:eoi] + group * (scans - len(sos)) + b"\xff\xd9")
    return path


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))


def sixteen_bit_png(path: Path, size: tuple[int, int] = (10000, 10000), channels: int = 1) -> Path:
    """``sixteen-bit.png``: 16 bits a sample (1 grey, 3 RGB or 4 RGBA channels), written row by row
    without holding the picture. Each row is one value, falling from white at the top to black at the
    bottom (alpha opaque), so 100 MP compresses to a few hundred kB yet decodes to gigabytes."""
    width, height = size
    colour_type = {1: 0, 3: 2, 4: 6}[channels]
    packer = zlib.compressobj(9)
    parts = []
    for y in range(height):
        value = sixteen_bit_value(y, height)
        pixel = struct.pack(">H", value) * min(channels, 3) + (b"\xff\xff" if channels == 4 else b"")
        parts.append(packer.compress(b"\x00" + pixel * width))
    parts.append(packer.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", b"".join(parts))
                     + _png_chunk(b"IEND", b""))
    return path


def sixteen_bit_value(y: int, height: int) -> int:
    """The 16-bit value of row ``y`` in :func:`sixteen_bit_png` (and :func:`float_tiff`, over 65535)."""
    return 65535 - (y * 65535) // max(1, height - 1)


def float_tiff(path: Path, size: tuple[int, int] = (10000, 10000), rows_per_strip: int | None = None,
               peak: float = 4.0) -> Path:
    """``float.tif``: one 32-bit float sample a pixel, deflate-compressed, written strip by strip. Row
    ``y`` holds ``peak * sixteen_bit_value(y) / 65535`` (above 1.0: HDR-like values). By default the
    whole picture is ONE strip, so a reader needs a buffer the size of the decoded image for it."""
    width, height = size
    rows = rows_per_strip or height
    strips = []
    for top in range(0, height, rows):
        packer = zlib.compressobj(9)
        body = [packer.compress(struct.pack("<f", peak * sixteen_bit_value(y, height) / 65535) * width)
                for y in range(top, min(height, top + rows))]
        strips.append(b"".join(body) + packer.flush())
    offsets, cursor = [], 8
    for strip in strips:
        offsets.append(cursor)
        cursor += len(strip)
    tags: list[tuple[int, int, int, bytes]] = []   # tag, type, count, value bytes

    def tag(number: int, kind: int, values: list[int]) -> None:
        fmt = {3: "<H", 4: "<I"}[kind]
        tags.append((number, kind, len(values), b"".join(struct.pack(fmt, v) for v in values)))
    tag(256, 4, [width])
    tag(257, 4, [height])
    tag(258, 3, [32])            # BitsPerSample
    tag(259, 3, [8])             # Compression: deflate
    tag(262, 3, [1])             # BlackIsZero
    tag(273, 4, offsets)         # StripOffsets
    tag(277, 3, [1])             # SamplesPerPixel
    tag(278, 4, [rows])          # RowsPerStrip
    tag(279, 4, [len(s) for s in strips])
    tag(284, 3, [1])             # PlanarConfiguration: chunky
    tag(339, 3, [3])             # SampleFormat: IEEE float
    ifd_at = cursor + (cursor & 1)
    extra_at = ifd_at + 2 + 12 * len(tags) + 4
    entries, extra = [], b""
    for number, kind, n, value in tags:
        if len(value) <= 4:
            entries.append(struct.pack("<HHI", number, kind, n) + value.ljust(4, b"\x00"))
        else:
            entries.append(struct.pack("<HHII", number, kind, n, extra_at + len(extra)))
            extra += value
    with path.open("wb") as handle:
        handle.write(b"II*\x00" + struct.pack("<I", ifd_at))
        for strip in strips:
            handle.write(strip)
        handle.write(b"\x00" * (ifd_at - cursor))
        handle.write(struct.pack("<H", len(tags)) + b"".join(entries) + b"\x00\x00\x00\x00" + extra)
    return path
