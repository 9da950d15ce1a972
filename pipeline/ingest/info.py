"""What probing found: plain values, no I/O (the planners read these and nothing else)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal


@dataclass(frozen=True)
class ImageInfo:
    """What a still image is, read from its header."""

    format: str
    mime: str
    width: int
    """Display width: after EXIF orientation."""
    height: int
    stored_width: int
    stored_height: int
    orientation: int
    mode: str
    bytes: int

    @property
    def kind(self) -> str:
        return "image"


FieldOrder = Literal["progressive", "tt", "bb"]


@dataclass(frozen=True)
class VideoStream:
    codec: str
    profile: str
    pix_fmt: str
    bit_depth: int
    width: int
    """Display width: after rotation and sample aspect ratio."""
    height: int
    coded_width: int
    coded_height: int
    rotation: int
    """Degrees the picture is turned for display (0, 90, 180, 270); ffmpeg applies it."""
    sar: tuple[int, int]
    fps: Fraction
    """Nominal frame rate (``r_frame_rate``)."""
    avg_fps: Fraction
    vfr: bool
    field_order: FieldOrder
    """Frame content: progressive, top field first (``tt``) or bottom field first (``bb``)."""
    duration: float
    """Seconds of picture (the programme length: audio is padded or cut to it)."""

    @property
    def interlaced(self) -> bool:
        return self.field_order != "progressive"

    @property
    def vertical(self) -> bool:
        return self.height > self.width


@dataclass(frozen=True)
class AudioStream:
    codec: str
    channels: int
    layout: str
    sample_rate: int


@dataclass(frozen=True)
class AVInfo:
    kind: Literal["video", "audio"]
    container: str
    demuxer: str
    mime: str
    bytes: int
    duration: float
    video: VideoStream | None
    audio: AudioStream | None

    @property
    def width(self) -> int | None:
        return self.video.width if self.video else None

    @property
    def height(self) -> int | None:
        return self.video.height if self.video else None
