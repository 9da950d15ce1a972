"""Clip renditions of a preset: the ``[video]`` table and its outputs (MP4, HLS, XDCAM, poster,
sprite sheet, WebVTT captions)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from pipeline.model.presets.common import Frozen, Loudness


class Mp4Output(Frozen):
    """H.264 + AAC in MP4 (``+faststart``), scaled to fit ``width`` x ``height``."""

    type: Literal["mp4"]
    name: str
    width: int = Field(ge=64, le=3840)
    height: int = Field(ge=64, le=3840)
    crf: int = Field(default=23, ge=10, le=40)
    maxrate: int = Field(default=6000, ge=100, le=100_000)
    """Peak video bitrate cap in kb/s (VBV buffer is twice that)."""
    x264_preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] = "veryfast"
    profile: Literal["main", "high"] = "high"
    level: str = "4.1"
    audio_bitrate: int = Field(default=128, ge=32, le=320)
    from_rung: str | None = None
    """Name of an HLS rung of the same preset to remux into this MP4 instead of encoding again
    (one encode serves both; ``crf``/``maxrate`` then come from the rung)."""


class HlsRung(Frozen):
    """One rung of an HLS ladder: a box to fit, an average and a peak bitrate (kb/s)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,15}$")
    width: int = Field(ge=64, le=3840)
    height: int = Field(ge=64, le=3840)
    bitrate: int = Field(ge=100, le=50_000)
    maxrate: int = Field(ge=100, le=60_000)

    @model_validator(mode="after")
    def _peak(self) -> HlsRung:
        if self.maxrate < self.bitrate:
            raise ValueError("maxrate must be at least bitrate")
        return self


class HlsOutput(Frozen):
    """An HLS ladder in fMP4 (CMAF): aligned GOPs, media and I-frame playlists, a master."""

    type: Literal["hls"]
    name: str = "hls"
    rungs: tuple[HlsRung, ...] = Field(min_length=1)
    segment_seconds: float = Field(default=6.0, ge=1, le=12)
    x264_preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] = "veryfast"
    audio_bitrate: int = Field(default=128, ge=32, le=320)


class XdcamOutput(Frozen):
    """XDCAM HD422 in MXF OP1a: MPEG-2 4:2:2P@HL 50 Mb/s CBR, 1080i50 TFF, PCM 24-bit tracks."""

    type: Literal["xdcam"]
    name: str
    bitrate: int = Field(default=50, ge=30, le=50)
    """Video bitrate in Mb/s."""
    audio_tracks: Literal[2, 4, 8] = 4
    """Mono PCM tracks: 1-2 carry the programme stereo, the rest repeat it."""
    timecode: str = Field(default="10:00:00:00", pattern=r"^\d\d:\d\d:\d\d:\d\d$")


class PosterOutput(Frozen):
    """One JPEG frame: at the asset's focus time, else at ``at`` of the duration."""

    type: Literal["poster"]
    name: str = "poster"
    width: int = Field(default=1280, ge=64, le=3840)
    at: float = Field(default=0.1, ge=0, le=1)
    quality: int = Field(default=85, ge=1, le=100)


class SpriteOutput(Frozen):
    """Scrub thumbnails: one frame every ``interval`` seconds, tiled into JPEG sheets, with a
    WebVTT index (``sheet.jpg#xywh=x,y,w,h`` per time range) for the web player."""

    type: Literal["sprite"]
    name: str = "sprite"
    interval: float = Field(default=2.0, ge=0.5, le=60)
    width: int = Field(default=160, ge=32, le=640)
    columns: int = Field(default=10, ge=1, le=20)
    rows: int = Field(default=10, ge=1, le=20)


class WebVttOutput(Frozen):
    """The asset's subtitles as a WebVTT sidecar for the web player (only when it has some)."""

    type: Literal["webvtt"]
    name: str = "captions"


VideoOutput = Annotated[Mp4Output | HlsOutput | XdcamOutput | PosterOutput | SpriteOutput | WebVttOutput,
                        Field(discriminator="type")]


class VideoSpec(Frozen):
    """How a preset turns clips into renditions."""

    frame: Literal["fit", "fill"] = "fit"
    """``fit``: keep the aspect ratio inside each output's box (turned for vertical sources);
    ``fill``: exactly the output size, a mismatched source pillarboxed over a blurred fill."""
    frame_rate: Literal["natural", "pal-interlaced"] = "natural"
    """``natural``: keep the source rate, halving it above ``max_fps``; ``pal-interlaced``:
    1080i50 top field first (25 and 50 Hz sources keep their motion, 30/60 Hz are converted)."""
    max_fps: float = Field(default=30, ge=12, le=60)
    gop_seconds: float = Field(default=2.0, ge=0.5, le=10)
    loudness: Loudness | None = None
    lower_third: bool = False
    """Burn the asset's lower third (name and title) for its time range."""
    burn_subtitles: bool = False
    """Burn the asset's subtitles (SRT/VTT) into the picture."""
    outputs: tuple[VideoOutput, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _rungs_exist(self) -> VideoSpec:
        rungs = {r.name for o in self.outputs if isinstance(o, HlsOutput) for r in o.rungs}
        for out in self.outputs:
            if isinstance(out, Mp4Output) and out.from_rung and out.from_rung not in rungs:
                raise ValueError(f"output {out.name}: from_rung {out.from_rung!r} is not a rung of"
                                 " this preset's HLS ladder")
        if sum(isinstance(o, HlsOutput) for o in self.outputs) > 1:
            raise ValueError("one HLS ladder per preset")
        for out in self.outputs:
            if isinstance(out, HlsOutput) and abs(out.segment_seconds / self.gop_seconds
                                                  - round(out.segment_seconds / self.gop_seconds)) > 1e-6:
                raise ValueError("HLS segment_seconds must be a whole number of GOPs (gop_seconds)")
        return self
