"""Plan before pixels: from a probed asset and its presets to a list of rendition plans.

Pure: sizes, crops, layouts, keys and spec hashes are computed here from numbers; no file is
read and no pixel touched. Rendering (:mod:`pipeline.render.image.ladder`) executes the plans.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Literal

from pipeline.ingest.info import ImageInfo
from pipeline.model.embedded_text import EmbeddedText
from pipeline.model.keys import rendition_key, spec_hash
from pipeline.model.presets import CaptionStyle, ImageRenditionSpec, LogoSpec, Preset
from pipeline.plan.generations import generation_material
from pipeline.plan.kinds import STILL_KINDS, FileOfKind, StillKind

Layout = Literal["scale", "crop", "blur-fill"]
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class ImagePlan(FileOfKind):
    """Everything needed to produce one still rendition, and its key."""

    preset: str
    """``name@version`` of the preset."""
    name: str
    spec: ImageRenditionSpec
    width: int
    height: int
    layout: Layout
    region: Box
    """The part of the (upright) source that is shown, in source pixels."""
    placement: tuple[int, int, int, int]
    """Where ``region`` lands in the frame: left, top, width, height (blur-fill only differs)."""
    text: EmbeddedText
    caption: str
    """Burned-in caption ("" for none)."""
    caption_style: CaptionStyle
    logo: LogoSpec | None
    logo_file: str | None
    font_file: str
    spec_hash: str
    key: str

    @property
    def scale(self) -> float:
        """Output pixels per source pixel."""
        return self.placement[2] / (self.region[2] - self.region[0])

    @property
    def kind(self) -> StillKind:
        return STILL_KINDS[self.spec.format]


def fill_region(src: tuple[int, int], frame: tuple[int, int], focus: tuple[float, float]) -> Box:
    """The largest box of the frame's aspect inside the source, centred on ``focus`` as far as
    the edges allow."""
    sw, sh = src
    aspect = frame[0] / frame[1]
    if sw / sh > aspect:
        cw, ch = sh * aspect, float(sh)
    else:
        cw, ch = float(sw), sw / aspect
    left = min(max(focus[0] * sw - cw / 2, 0.0), sw - cw)
    top = min(max(focus[1] * sh - ch / 2, 0.0), sh - ch)
    return (left, top, left + cw, top + ch)


def fit_inside(src: tuple[int, int], frame: tuple[int, int]) -> tuple[int, int, int, int]:
    """Centre the whole source in the frame, scaled down to fit (never up)."""
    k = min(frame[0] / src[0], frame[1] / src[1], 1.0)
    w, h = max(1, round(src[0] * k)), max(1, round(src[1] * k))
    return ((frame[0] - w) // 2, (frame[1] - h) // 2, w, h)


def _layout(spec: ImageRenditionSpec, src: tuple[int, int], focus: tuple[float, float]
            ) -> tuple[Layout, int, int, Box, tuple[int, int, int, int]] | None:
    sw, sh = src
    whole: Box = (0.0, 0.0, float(sw), float(sh))
    if spec.mode == "width":
        if spec.width > sw:
            return None  # never upscaled; see _width_fallbacks
        height = max(1, round(sh * spec.width / sw))
        return ("scale", spec.width, height, whole, (0, 0, spec.width, height))
    assert spec.height is not None
    frame = (spec.width, spec.height)
    region = fill_region(src, frame, focus)
    coverage = (region[2] - region[0]) * (region[3] - region[1]) / (sw * sh)
    if coverage >= spec.blur_fill_below and region[2] - region[0] >= frame[0] - 0.5:
        return ("crop", spec.width, spec.height, region, (0, 0, spec.width, spec.height))
    return ("blur-fill", spec.width, spec.height, whole, fit_inside(src, frame))


def _width_fallbacks(specs: tuple[ImageRenditionSpec, ...], source_width: int
                     ) -> list[ImageRenditionSpec]:
    """Widths above the source are dropped; one rendition at the source width replaces them."""
    out = []
    for fmt in dict.fromkeys(s.format for s in specs if s.mode == "width"):
        same = [s for s in specs if s.mode == "width" and s.format == fmt]
        dropped = [s for s in same if s.width > source_width]
        if dropped and all(s.width != source_width for s in same):
            template = min(dropped, key=lambda s: s.width)
            name = template.name.replace(str(template.width), str(source_width))
            if name == template.name:
                name = f"{template.name}-{source_width}"
            out.append(template.model_copy(update={"width": source_width, "name": name}))
    return out


def plan_image(
    info: ImageInfo,
    asset_sha256: str,
    presets: list[Preset],
    text: EmbeddedText,
    focus: tuple[float, float] = (0.5, 0.5),
    branded: bool = False,
    generations: Mapping[str, str] | None = None,
) -> list[ImagePlan]:
    """All still renditions of one asset, largest first. ``generations`` (by preset name): a
    re-run's generation, part of the spec material of that preset's renditions, so they land on
    keys of their own; a preset without one keeps the keys of its spec alone."""
    src = (info.width, info.height)
    plans = []
    for preset in presets:
        specs = list(preset.images) + _width_fallbacks(preset.images, info.width)
        for spec in specs:
            layout = _layout(spec, src, focus)
            if layout is None:
                continue
            kind, width, height, region, placement = layout
            logo = preset.logo if spec.logo and not branded else None
            caption = text.caption if spec.caption else ""
            material = {
                "preset": preset.label,
                "spec": spec.model_dump(mode="json"),
                "layout": kind,
                "size": [width, height],
                "region": [round(v, 2) for v in region],
                "placement": list(placement),
                "text": asdict(text),
                "caption": caption,
                "caption_style": preset.caption.model_dump(mode="json") if caption else None,
                "logo": logo.model_dump(mode="json") if logo else None,
                "graphics": preset.graphics_hash if (logo or caption) else None,
                **generation_material(generations, preset),
            }
            digest = spec_hash(material)
            plans.append(ImagePlan(
                preset=preset.label, name=spec.name, spec=spec, width=width, height=height,
                layout=kind, region=region, placement=placement, text=text, caption=caption,
                caption_style=preset.caption, logo=logo,
                logo_file=str(preset.logo_path) if logo and preset.logo_path else None,
                font_file=str(preset.font_path), spec_hash=digest,
                key=rendition_key(asset_sha256, preset.label, spec.name, digest,
                                  STILL_KINDS[spec.format].extension),
            ))
    plans.sort(key=lambda p: p.scale, reverse=True)
    return plans


def decode_size(info: ImageInfo, plans: list[ImagePlan]) -> tuple[int, int]:
    """The smallest upright decode size that still serves every plan at full quality."""
    top = max((p.scale for p in plans), default=1.0)
    # Exact ceiling (less a rounding hair): a 4000 px source for a 2000 px rendition must still
    # qualify for 1/2 DCT scaling.
    return (min(info.width, math.ceil(info.width * top - 1e-6)),
            min(info.height, math.ceil(info.height * top - 1e-6)))
