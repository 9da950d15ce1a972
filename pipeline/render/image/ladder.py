"""Render still renditions: one decode, every size, largest first, cascading down.

The source is decoded once at the smallest size the largest rendition needs (JPEG DCT scaling),
turned upright and converted to sRGB. Each rendition is then resized from the smallest clean
image already made that is still at least as large, so a 320 px JPEG comes from the 640 px one,
not from 24 MP. Formats of the same geometry share one resized, captioned, logo-stamped frame.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageEnhance, ImageFilter

from pipeline.errors import RenderError
from pipeline.ingest.decode import decode, open_image
from pipeline.ingest.info import ImageInfo
from pipeline.plan.image import ImagePlan, decode_size, fill_region
from pipeline.render.graphics.logo import place_logo
from pipeline.render.graphics.text import draw_caption_bar
from pipeline.render.image.encoders import ENCODERS
from pipeline.render.image.metadata import safe_exif

LANCZOS = Image.Resampling.LANCZOS
REDUCING_GAP = 3.0
"""Box-reduce by whole factors first, then Lanczos over the last >= 3x: indistinguishable from a
full Lanczos (Pillow docs) and several times faster on big reductions."""


ENCODE_THREADS = min(4, os.cpu_count() or 1)


@dataclass(frozen=True)
class Rendered:
    """One rendition written to scratch, with the facts the manifest needs."""

    plan: ImagePlan
    path: Path
    bytes: int
    sha256: str
    width: int
    height: int


class _Ladder:
    """Clean (no logo, no caption) upright copies of the whole picture at falling scales."""

    def __init__(self, base: Image.Image, scale: float) -> None:
        self.rungs: list[tuple[float, Image.Image]] = [(scale, base)]

    def source_for(self, scale: float) -> tuple[float, Image.Image]:
        """The smallest rung still at least ``scale`` (the base when none is)."""
        best = self.rungs[0]
        for rung in self.rungs:
            if rung[0] >= scale - 1e-9 and rung[0] <= best[0]:
                best = rung
        return best

    def add(self, scale: float, img: Image.Image) -> None:
        self.rungs.append((scale, img))


def _resize(ladder: _Ladder, scale: float, region: tuple[float, float, float, float],
            size: tuple[int, int]) -> Image.Image:
    rung_scale, src = ladder.source_for(scale)
    left, top, right, bottom = (v * rung_scale for v in region)
    box = (max(0.0, left), max(0.0, top), min(float(src.width), right), min(float(src.height), bottom))
    whole = box == (0.0, 0.0, float(src.width), float(src.height))
    if whole and src.size == size:
        return src
    return src.resize(size, LANCZOS, box=None if whole else box, reducing_gap=REDUCING_GAP)


def _blur_fill(ladder: _Ladder, plan: ImagePlan, info: ImageInfo) -> Image.Image:
    frame = (plan.width, plan.height)
    left, top, width, height = plan.placement
    fg = _resize(ladder, plan.scale, plan.region, (width, height))
    # Background: the picture filling the frame, blurred at 1/8 size (cheap), then darkened.
    cover = fill_region((info.width, info.height), frame, (0.5, 0.5))
    small = (max(1, frame[0] // 8), max(1, frame[1] // 8))
    bg_scale = small[0] / (cover[2] - cover[0])
    bg = _resize(ladder, bg_scale, cover, small).filter(ImageFilter.GaussianBlur(3))
    bg = bg.resize(frame, Image.Resampling.BILINEAR)  # blurred anyway
    bg = ImageEnhance.Brightness(bg).enhance(0.65)
    if bg.mode != fg.mode:
        bg = bg.convert(fg.mode)
    bg.paste(fg, (left, top), fg if fg.mode == "RGBA" else None)
    return bg


def _frame(ladder: _Ladder, plan: ImagePlan, info: ImageInfo) -> Image.Image:
    if plan.layout == "blur-fill":
        img = _blur_fill(ladder, plan, info)
    else:
        img = _resize(ladder, plan.scale, plan.region, (plan.width, plan.height))
        if plan.layout == "scale":
            ladder.add(plan.scale, img)
    if plan.caption:
        img = draw_caption_bar(img, plan.caption, plan.caption_style, plan.font_file,
                               plan.text.language)
    if plan.logo and plan.logo_file:
        img = place_logo(img, plan.logo, plan.logo_file)
    return img


def encode(img: Image.Image, plan: ImagePlan, exif: bytes) -> bytes:
    """Encode one frame in the plan's format (:mod:`pipeline.render.image.encoders`)."""
    return ENCODERS[plan.spec.format](img, plan.spec, plan.text, exif)


def _geometry(plan: ImagePlan) -> tuple[object, ...]:
    """Plans with equal geometry share one frame (the JPEG and WebP of one width)."""
    return (plan.layout, plan.width, plan.height, plan.region, plan.placement, plan.caption,
            plan.logo, plan.preset)


def _source_exif(path: Path, info: ImageInfo) -> bytes:
    try:
        with open_image(path, info.format) as img:
            return safe_exif(img.getexif())
    except (OSError, ValueError, SyntaxError):
        return b""


def _write(plan: ImagePlan, data: bytes, scratch: Path) -> Rendered:
    target = scratch / f"{plan.spec_hash[:24]}.{plan.extension}"
    target.write_bytes(data)
    return Rendered(plan=plan, path=target, bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
                    width=plan.width, height=plan.height)


def _encode_group(frame: Image.Image, plans: list[ImagePlan], exif: bytes) -> list[bytes]:
    """Encode one frame in each plan's format, one after another (``Image.save`` keeps its
    options on the image object, so one frame must never be saved by two threads at once)."""
    out = []
    for plan in plans:
        try:
            out.append(encode(frame, plan, exif))
        except (OSError, ValueError) as exc:
            raise RenderError(f"could not encode {plan.preset} {plan.name} as {plan.spec.format}:"
                              f" {exc}", code="encode-failed") from exc
    return out


def render_image(path: Path, info: ImageInfo, plans: list[ImagePlan], scratch: Path,
                 on_done: Callable[[Rendered], None] | None = None,
                 threads: int = ENCODE_THREADS) -> list[Rendered]:
    """Execute ``plans`` (largest first) against the source at ``path``; files go to ``scratch``.

    Frames are made one after another, each size from the previous; meanwhile each frame is
    encoded in all its formats on one of ``threads`` threads (Pillow releases the GIL while it
    resizes and encodes). ``on_done`` is called on this thread with each finished
    :class:`Rendered`, in plan order.
    """
    if not plans:
        return []
    exif = _source_exif(path, info)
    base = decode(path, info.format, info.orientation, decode_size(info, plans))
    ladder = _Ladder(base, base.width / info.width)
    groups: dict[tuple[object, ...], list[ImagePlan]] = {}
    for plan in plans:
        groups.setdefault(_geometry(plan), []).append(plan)
    jobs: deque[tuple[list[ImagePlan], Future[list[bytes]]]] = deque()
    out = []

    def finish(group: list[ImagePlan], job: Future[list[bytes]]) -> None:
        for plan, data in zip(group, job.result(), strict=True):
            rendered = _write(plan, data, scratch)
            out.append(rendered)
            if on_done is not None:
                on_done(rendered)

    with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="encode") as pool:
        try:
            for group in groups.values():
                frame = _frame(ladder, group[0], info)
                jobs.append((group, pool.submit(_encode_group, frame, group, exif)))
                while jobs and jobs[0][1].done():
                    finish(*jobs.popleft())
            while jobs:
                finish(*jobs.popleft())
        finally:
            for _group, job in jobs:
                job.cancel()
    return out
