"""Open and decode still images: allow-listed formats, reduced decode, upright, sRGB.

``decode`` is the one place pixels are read. It decodes at the smallest size the renditions
need (JPEG DCT scaling through ``draft``), turns the picture upright from EXIF orientation and
converts any colour model (CMYK, 16-bit, palette, grey, ICC-tagged) to 8-bit sRGB, keeping alpha.

Memory is the constraint: each step makes at most one new copy of the picture and the previous one
is dropped as soon as the next exists; 16- and 32-bit pictures go to 8 bits a strip at a time
with integer arithmetic (a whole-picture float copy of a 100 MP grey PNG took 1.5 GB).
:func:`working_bytes` states the peak, and the probe refuses what would not fit.
"""

from __future__ import annotations

import io
import math
from functools import cache
from pathlib import Path

from PIL import Image, ImageCms

from pipeline.errors import ProbeError

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "GIF", "HEIF", "AVIF")


@cache
def _register_heif() -> None:
    import pi_heif

    pi_heif.register_heif_opener()


def open_image(path: Path, fmt: str) -> Image.Image:
    """Open lazily (header only), trying only the sniffed, allow-listed format."""
    if fmt not in ALLOWED_FORMATS:
        raise ProbeError(f"{fmt} images are not accepted", code="unsupported")
    if fmt == "HEIF":
        _register_heif()
    return Image.open(path, formats=[fmt])


@cache
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _is_srgb(icc: bytes) -> bool:
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = ImageCms.getProfileDescription(profile)
    except (ImageCms.PyCMSError, OSError, TypeError):
        return True  # unreadable profile: treat as sRGB rather than fail the photo
    return "srgb" in description.lower().replace(" ", "")


HIGH_BIT_MODES = frozenset(("I", "I;16", "I;16B", "I;16L", "I;16N", "F"))
_ONE_BYTE_MODES = frozenset(("1", "L", "P"))
_STRIP_PIXELS = 1 << 20
"""Pixels converted at once from 16/32 bits: a few MB of temporaries, whatever the picture."""

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90,
}
"""EXIF orientation -> the transpose that makes the stored picture upright (as ImageOps)."""


def bytes_per_pixel(mode: str) -> int:
    """Bytes Pillow holds per pixel in ``mode``: 1 for 1/L/P, 2 for 16-bit grey, else 4 (RGB is
    stored as 32 bits a pixel, like RGBA and CMYK)."""
    if mode in _ONE_BYTE_MODES:
        return 1
    return 2 if mode.startswith("I;16") else 4


def working_bytes(mode: str, size: tuple[int, int], orientation: int, decoder_bytes: int = 0,
                  alpha: bool = False) -> int:
    """Peak bytes of picture data that decoding (and rendering) a ``size`` picture stored in
    ``mode`` holds when it is decoded in full.

    The decoder's own buffers (``decoder_bytes``) live beside the decoded picture while it is read;
    then each step holds its input and its output: 16/32-bit to 8-bit grey (one byte a pixel,
    converted in strips), the upright copy when EXIF says the picture is stored sideways, and the
    8-bit RGB(A) copy (four bytes a pixel) for anything that is not RGB or RGBA already (an RGB ICC
    conversion is done in place). A picture with ``alpha`` is resized through a premultiplied copy
    (Pillow's ``RGBa``), so rendering holds two full RGBA pictures. JPEG DCT scaling usually makes the
    real figure smaller; this is the bound for the worst plan.
    """
    pixels = size[0] * size[1]
    current = bytes_per_pixel(mode)
    peak = current * pixels + decoder_bytes
    if mode in HIGH_BIT_MODES or mode == "1":
        peak = max(peak, (current + 1) * pixels)
        current, mode = 1, "L"
    if orientation != 1:
        peak = max(peak, 2 * current * pixels)
    if mode not in ("RGB", "RGBA"):
        peak = max(peak, (current + 4) * pixels)
    if alpha:
        peak = max(peak, 8 * pixels)
    return peak


def _strips(img: Image.Image) -> list[tuple[int, int, int, int]]:
    rows = max(1, _STRIP_PIXELS // max(1, img.width))
    return [(0, top, img.width, min(img.height, top + rows)) for top in range(0, img.height, rows)]


def _peak(img: Image.Image) -> float:
    """The largest finite value of a 32-bit picture, read a strip at a time."""
    _low, high = img.getextrema()
    if isinstance(high, (int, float)) and math.isfinite(high):
        return float(high)
    import numpy as np  # here, not at the top: a render child starts 0.2 s sooner without it

    top = 0.0
    for box in _strips(img):
        values = np.asarray(img.crop(box), dtype=np.float64)
        finite = values[np.isfinite(values)]
        if finite.size:
            top = max(top, float(finite.max()))
    return top


def _high_bit_to_8(img: Image.Image) -> Image.Image:
    """16-bit, 32-bit or float grey to 8-bit grey by scaling (a plain convert clips to white).

    16-bit: ``v * 255 / 65535`` rounded, in integers. 32-bit integers: scaled so the largest value is
    white (by 65535 when that is above 255, as 16-bit data stored in 32 bits is; negative values are
    black). Float: the largest finite value is white, negatives and NaN black. A strip at a time, so
    no temporary holds more than a few MB.
    """
    import numpy as np  # here, not at the top: a render child starts 0.2 s sooner without it

    out = Image.new("L", img.size)
    if img.mode.startswith("I;16"):
        top = 65535
    elif img.mode == "I":
        high = img.getextrema()[1]
        top = 65535 if isinstance(high, int) and high > 255 else 255
        if isinstance(high, int) and high > 65535:
            top = high
    else:
        peak = _peak(img)
        scale = 255.0 / peak if peak > 0 else 0.0
    for box in _strips(img):
        values = np.asarray(img.crop(box))
        if img.mode == "F":
            grey = np.nan_to_num(values * np.float32(scale), nan=0.0, posinf=255.0, neginf=0.0)
            eight = np.rint(np.clip(grey, 0, 255)).astype(np.uint8)
        else:
            wide = np.clip(values.astype(np.int64), 0, top)
            eight = ((wide * 255 + top // 2) // top).astype(np.uint8)
        out.paste(Image.fromarray(eight, mode="L"), box[:2])
    return out


def upright(img: Image.Image, orientation: int) -> Image.Image:
    """The picture turned as its EXIF orientation says (a new image; the same one for 1)."""
    method = _TRANSPOSE.get(orientation)
    return img if method is None else img.transpose(method)


def to_srgb(img: Image.Image) -> Image.Image:
    """Return an 8-bit ``RGB`` or ``RGBA`` image in sRGB.

    An RGB or RGBA picture with a non-sRGB profile is converted IN PLACE (the input is changed):
    one copy of a 120 MP picture is 480 MB, and the caller drops the original anyway.
    """
    icc = img.info.get("icc_profile")
    mode = img.mode
    if mode in HIGH_BIT_MODES:
        img, mode = _high_bit_to_8(img), "L"
    elif mode == "1":
        img, mode = img.convert("L"), "L"
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in img.info
        return img.convert("RGBA" if has_alpha else "RGB")
    if mode == "LA":
        return img.convert("RGBA")
    target = "RGBA" if mode == "RGBA" else "RGB"
    if icc and mode in ("RGB", "RGBA", "CMYK", "L") and not (mode != "CMYK" and _is_srgb(icc)):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            if mode == "L":
                img = img.convert("RGB")  # grey profiles are rare; treat as sRGB grey
            elif mode == target:
                ImageCms.profileToProfile(
                    img, source, _srgb_profile(),
                    renderingIntent=ImageCms.Intent.PERCEPTUAL, outputMode=target, inPlace=True)
            else:
                converted = ImageCms.profileToProfile(
                    img, source, _srgb_profile(),
                    renderingIntent=ImageCms.Intent.PERCEPTUAL, outputMode=target)
                if converted is not None:
                    img = converted
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: fall through to the plain conversion below
    if img.mode != target:
        img = img.convert(target)
    img.info.pop("icc_profile", None)
    return img


def draft_size(stored: tuple[int, int], orientation: int, need: tuple[int, int]) -> tuple[int, int]:
    """The stored-orientation size to ask ``draft`` for, given the display size needed."""
    if orientation >= 5:
        need = (need[1], need[0])
    return (min(stored[0], need[0]), min(stored[1], need[1]))


def _load(path: Path, fmt: str, orientation: int, need: tuple[int, int]) -> Image.Image:
    """Read the pixels (JPEG: DCT-scaled to no less than ``need``); keep only the info we use."""
    try:
        with open_image(path, fmt) as img:
            if fmt == "JPEG":
                img.draft(None, draft_size(img.size, orientation, need))
            img.load()
            img.info = {k: v for k, v in img.info.items() if k in ("icc_profile", "transparency")}
            return img
    except (OSError, SyntaxError, ValueError) as exc:
        raise ProbeError(f"the image data is corrupt or truncated ({exc})", code="corrupt") from exc


def decode(path: Path, fmt: str, orientation: int, need: tuple[int, int]) -> Image.Image:
    """Decode once, at no less than ``need`` (display pixels), upright and in sRGB.

    Each step rebinds ``img`` so the picture before it is freed: high bit depths go to 8 bits
    before the picture is turned (turning 8-bit grey copies a quarter of what turning float does).
    Raises :class:`ProbeError` when the data is truncated or corrupt.
    """
    img = _load(path, fmt, orientation, need)
    if img.mode in HIGH_BIT_MODES:
        info = img.info
        img = _high_bit_to_8(img)
        img.info = info
    if orientation != 1:
        info = img.info
        img = upright(img, orientation)
        img.info = info
    return to_srgb(img)
