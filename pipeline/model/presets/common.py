"""What every preset kind shares: the frozen base model, preset and rendition names, the station
logo, the caption style, and the loudness target of clips and audio."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Position = Literal["top-left", "top-right", "bottom-left", "bottom-right"]

NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
"""A preset or rendition name: lower-case letters, digits and '-', a letter first."""
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


class Frozen(BaseModel):
    """Base of every preset model: unknown keys are refused, instances cannot change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LogoSpec(Frozen):
    """Where and how the station logo goes on every rendition of a preset."""

    file: str = "station/logo.png"
    """Logo image (PNG with alpha), relative to the presets folder."""
    position: Position = "top-right"
    width: float = Field(default=0.12, gt=0, le=0.5)
    """Logo width as a fraction of the frame width."""
    opacity: float = Field(default=0.9, gt=0, le=1)
    margin: float = Field(default=0.05, ge=0, le=0.2)
    """Distance from the frame edges as a fraction of the frame width and height (0.05 keeps it
    inside the 90 % title-safe area)."""


class CaptionStyle(Frozen):
    """How captions are burned in (social renditions)."""

    font: str = "fonts/DejaVuSans-Bold.ttf"
    """A font covering Vietnamese, relative to the presets folder."""
    size: float = Field(default=0.038, gt=0, le=0.2)
    """Font size as a fraction of the frame height."""
    max_lines: int = Field(default=3, ge=1, le=8)
    safe_area: float = Field(default=0.9, gt=0.5, le=1)
    """Text stays inside this centred fraction of the frame (title-safe)."""
    text_colour: str = "#FFFFFF"
    bar_colour: str = "#000000"
    bar_opacity: float = Field(default=0.62, ge=0, le=1)

    @field_validator("text_colour", "bar_colour")
    @classmethod
    def _colour(cls, value: str) -> str:
        if not _COLOUR.fullmatch(value):
            raise ValueError("must be a colour like #1A2B3C")
        return value.upper()


class Loudness(Frozen):
    """EBU R128 loudness target: two-pass ``loudnorm`` (linear) to these values."""

    integrated: float = Field(ge=-36, le=-5)
    """Integrated loudness in LUFS (-23 for air, -16 for the web)."""
    true_peak: float = Field(default=-1.0, ge=-9, le=0)
    """Maximum true peak in dBTP."""
    lra: float = Field(default=11.0, ge=1, le=20)
    """Loudness range target in LU."""
