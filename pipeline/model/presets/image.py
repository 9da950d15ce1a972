"""Still-image renditions of a preset: the ``[image]`` table, one spec per width and format."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from pipeline.model.presets.common import Frozen

ImageFormat = Literal["jpeg", "webp", "avif", "png"]
DEFAULT_QUALITY = {"jpeg": 82, "webp": 80, "avif": 60, "png": 100}


class ImageRenditionSpec(Frozen):
    """One still-image output: a size, a way to get there, and a format."""

    name: str
    format: ImageFormat
    mode: Literal["width", "fill"]
    """``width``: scale to ``width`` keeping the aspect ratio, never upscaled.
    ``fill``: exactly ``width`` x ``height``, cropped around the focal point; a source that would
    lose too much (see ``blur_fill_below``) or is smaller than the frame is placed over a blurred
    fill of itself instead."""
    width: int = Field(ge=16, le=8192)
    height: int | None = Field(default=None, ge=16, le=8192)
    quality: int = Field(ge=1, le=100)
    effort: int = Field(default=4, ge=0, le=9)
    """Encoder effort: WebP ``method`` (0-6), AVIF speed is ``10 - effort`` (speed >= 8 by default)."""
    subsampling: Literal["4:2:0", "4:4:4"] = "4:2:0"
    progressive: bool = True
    caption: bool = False
    """Burn the asset caption into a bar at the bottom, inside the title-safe area."""
    blur_fill_below: float = Field(default=0.6, ge=0, le=1)
    background: str = "#FFFFFF"
    """Colour under transparent sources for formats without alpha."""
    logo: bool = True

    @model_validator(mode="after")
    def _shape(self) -> ImageRenditionSpec:
        if self.mode == "fill" and self.height is None:
            raise ValueError("mode 'fill' needs both width and height")
        if self.mode == "width" and self.height is not None:
            raise ValueError("mode 'width' takes a width only (height follows the source)")
        if self.format == "avif" and self.effort < 2:
            raise ValueError("AVIF needs effort >= 2 (encoder speed <= 8 is far too slow here)")
        return self

    @property
    def extension(self) -> str:
        return {"jpeg": "jpg", "webp": "webp", "avif": "avif", "png": "png"}[self.format]

    @property
    def mime(self) -> str:
        return f"image/{self.format}"


class ImageGroup(Frozen):
    """A group in the TOML that expands into one spec per width and format."""

    name: str = "w{width}"
    mode: Literal["width", "fill"] = "width"
    width: int | None = None
    widths: tuple[int, ...] | None = None
    height: int | None = None
    formats: tuple[ImageFormat, ...] = Field(default=("jpeg",), min_length=1)
    quality: dict[str, int] | int | None = None
    effort: int = 4
    subsampling: Literal["4:2:0", "4:4:4"] = "4:2:0"
    progressive: bool = True
    caption: bool = False
    blur_fill_below: float = 0.6
    background: str = "#FFFFFF"
    logo: bool = True

    @model_validator(mode="after")
    def _one_width(self) -> ImageGroup:
        if (self.width is None) == (self.widths is None):
            raise ValueError("give either 'width' or 'widths'")
        if self.widths is not None and len(set(self.widths)) != len(self.widths):
            raise ValueError("widths must not repeat")
        return self

    def expand(self) -> list[dict[str, Any]]:
        widths = self.widths if self.widths is not None else (self.width,)
        out = []
        for width in widths:
            for fmt in self.formats:
                if isinstance(self.quality, int):
                    quality = self.quality
                else:
                    quality = (self.quality or {}).get(fmt, DEFAULT_QUALITY[fmt])
                out.append({
                    "name": self.name.format(width=width, height=self.height),
                    "format": fmt, "mode": self.mode, "width": width, "height": self.height,
                    "quality": quality, "effort": self.effort, "subsampling": self.subsampling,
                    "progressive": self.progressive, "caption": self.caption,
                    "blur_fill_below": self.blur_fill_below, "background": self.background,
                    "logo": self.logo,
                })
        return out
