"""Open and decode still images: allow-listed formats, reduced decode, upright, sRGB.

``decode`` is the one place pixels are read. It decodes at the smallest size the renditions
need (JPEG DCT scaling through ``draft``), turns the picture upright from EXIF orientation and
converts any colour model (CMYK, 16-bit, palette, grey, ICC-tagged) to 8-bit sRGB, keeping alpha.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageCms, ImageOps

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


def _high_bit_to_8(img: Image.Image) -> Image.Image:
    """16-bit or 32-bit grey to 8-bit by scaling (a plain convert clips to white)."""
    arr = np.asarray(img)
    scaled: np.ndarray[Any, Any]
    if img.mode == "F":
        peak = float(arr.max()) if arr.size else 1.0
        scaled = np.clip(arr / (peak or 1.0) * 255.0, 0, 255)
    else:
        top = 65535 if arr.max(initial=0) > 255 or img.mode.startswith("I;16") else 255
        scaled = arr.astype(np.float32) * (255.0 / top)
    return Image.fromarray(np.round(scaled).astype(np.uint8), mode="L")


def to_srgb(img: Image.Image) -> Image.Image:
    """Return an 8-bit ``RGB`` or ``RGBA`` image in sRGB."""
    icc = img.info.get("icc_profile")
    mode = img.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
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


def decode(path: Path, fmt: str, orientation: int, need: tuple[int, int]) -> Image.Image:
    """Decode once, at no less than ``need`` (display pixels), upright and in sRGB.

    Raises :class:`ProbeError` when the data is truncated or corrupt.
    """
    try:
        with open_image(path, fmt) as img:
            if fmt == "JPEG":
                img.draft(None, draft_size(img.size, orientation, need))
            img.load()
            keep: dict[str | tuple[int, int], Any] = {
                k: v for k, v in img.info.items() if k in ("icc_profile", "transparency")}
            upright = ImageOps.exif_transpose(img) if orientation != 1 else img
            upright.info = keep
    except (OSError, SyntaxError, ValueError) as exc:
        raise ProbeError(f"the image data is corrupt or truncated ({exc})", code="corrupt") from exc
    return to_srgb(upright)
