"""The Pillow encoder of each still format (:data:`pipeline.plan.kinds.STILL_KINDS`), by name.

Each encoder writes one finished frame in its format with the caption, byline, credit and
copyright embedded (XMP in every format, IPTC as well in JPEG) and the source's safe EXIF.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping

from PIL import Image, PngImagePlugin

from pipeline.model.embedded_text import EmbeddedText
from pipeline.model.presets import ImageRenditionSpec
from pipeline.render.image.metadata import app13_segment, build_iptc, build_xmp, insert_app13

Encoder = Callable[[Image.Image, ImageRenditionSpec, EmbeddedText, bytes], bytes]
"""(frame, spec, embedded text, EXIF) -> the file's bytes."""


def _flatten(img: Image.Image, background: str) -> Image.Image:
    if img.mode != "RGBA":
        return img
    value = int(background[1:], 16)
    under = Image.new("RGB", img.size, (value >> 16, (value >> 8) & 0xFF, value & 0xFF))
    under.paste(img, (0, 0), img)
    return under


def _jpeg(img: Image.Image, spec: ImageRenditionSpec, text: EmbeddedText, exif: bytes) -> bytes:
    """No alpha in JPEG: a transparent source is laid on the spec's ``background``."""
    buffer = io.BytesIO()
    _flatten(img, spec.background).save(
        buffer, "JPEG", quality=spec.quality, subsampling=spec.subsampling,
        progressive=spec.progressive, optimize=False, exif=exif, xmp=build_xmp(text))
    return insert_app13(buffer.getvalue(), app13_segment(build_iptc(text)))


def _webp(img: Image.Image, spec: ImageRenditionSpec, text: EmbeddedText, exif: bytes) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "WEBP", quality=spec.quality, method=min(spec.effort, 6), exif=exif,
             xmp=build_xmp(text))
    return buffer.getvalue()


def _avif(img: Image.Image, spec: ImageRenditionSpec, text: EmbeddedText, exif: bytes) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "AVIF", quality=spec.quality, speed=10 - spec.effort, exif=exif,
             xmp=build_xmp(text))
    return buffer.getvalue()


def _png(img: Image.Image, spec: ImageRenditionSpec, text: EmbeddedText, exif: bytes) -> bytes:
    """Lossless: ``quality`` and ``effort`` do not apply; XMP goes into an iTXt chunk."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", build_xmp(text).decode("utf-8"))
    buffer = io.BytesIO()
    img.save(buffer, "PNG", pnginfo=info, exif=exif)
    return buffer.getvalue()


ENCODERS: Mapping[str, Encoder] = {"jpeg": _jpeg, "webp": _webp, "avif": _avif, "png": _png}
"""Still format name -> its encoder."""
