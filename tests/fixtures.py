"""Test media made by code, named for their trouble (no binary fixtures in the repo)."""

from __future__ import annotations

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
