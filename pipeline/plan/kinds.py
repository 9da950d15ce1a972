"""Output kinds: every still format, clip output and audio format, each declared once, as data.

A kind is what a preset names in an image rendition's ``format`` or a clip or audio output's
``type``. Its entry here says what file it makes (extension, MIME type), its media family and, for
clip outputs, how one output is planned (picture, rate, cadence). Pure like the rest of
:mod:`pipeline.plan`. The render step of each kind is registered under the same name on the render
side: :data:`pipeline.render.image.encoders.ENCODERS` for stills,
:data:`pipeline.render.av.outputs.CLIP_STEPS` and :data:`~pipeline.render.av.outputs.AUDIO_STEPS`
for clip and audio outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar, Literal, Protocol, TypeVar

from pipeline.ingest.info import AVInfo
from pipeline.model.presets import (
    HlsOutput,
    Mp4Output,
    PosterOutput,
    SpriteOutput,
    VideoSpec,
    WebVttOutput,
    XdcamOutput,
)
from pipeline.model.subtitles import Cue
from pipeline.plan.frames import PAL_FRAMES, Cadence, Frame, RungPlan, plan_frame

Family = Literal["image", "video", "audio"]
Feed = Literal["graph", "seek", "text"]
ClipOutput = Mp4Output | HlsOutput | XdcamOutput | PosterOutput | SpriteOutput | WebVttOutput


class _Named(Protocol):
    @property
    def extension(self) -> str: ...

    @property
    def mime(self) -> str: ...


class FileOfKind:
    """A planned file whose extension and MIME type are its kind's (a plan class defines ``kind``)."""

    @property
    def kind(self) -> _Named:
        raise NotImplementedError

    @property
    def extension(self) -> str:
        return self.kind.extension

    @property
    def mime(self) -> str:
        return self.kind.mime


@dataclass(frozen=True)
class StillKind:
    """A still image format, made by Pillow from the one decode of a photo."""

    name: str
    extension: str
    mime: str
    family: ClassVar[Family] = "image"


@dataclass(frozen=True)
class AudioKind:
    """An audio-only format: the programme stereo at a loudness (radio)."""

    name: str
    extension: str
    mime: str
    family: ClassVar[Family] = "audio"


@dataclass(frozen=True)
class Branch:
    """What every clip output of one preset is planned from."""

    info: AVInfo
    spec: VideoSpec
    rate: Fraction
    """Progressive frame rate of the branch before any interlacing."""
    cadence: Cadence
    rungs: tuple[RungPlan, ...]
    """The preset's HLS ladder for this source (empty without one)."""
    alias: Mapping[str, str]
    """Declared rung name -> the kept rung that stands for it."""
    cues: tuple[Cue, ...]
    """The asset's subtitles."""

    @property
    def output_rate(self) -> Fraction:
        """Frames per second of a plain output: 25 on air, else the branch rate."""
        return PAL_FRAMES if self.spec.frame_rate == "pal-interlaced" else self.rate


@dataclass(frozen=True)
class Shape:
    """A clip output's plan as its kind decides it."""

    frame: Frame
    fps: Fraction
    cadence: Cadence = "progressive"
    rungs: tuple[RungPlan, ...] = ()
    """The ladder it encodes (HLS)."""
    from_rung: str | None = None
    """The rung it is remuxed from instead of encoded (MP4)."""
    moment: float | None = None
    """One frame of the clip, at this fraction of the duration unless the asset names a time;
    the time then goes into the spec hash (poster)."""
    cues: tuple[Cue, ...] | None = None
    """Cues written into the output itself, part of its spec hash (WebVTT)."""


ClipPlanner = Callable[[Branch, ClipOutput], Shape | None]
"""The shape of one output of a branch; None: the asset gets no such output."""


@dataclass(frozen=True)
class ClipKind:
    """A clip output: its file and how it is planned."""

    name: str
    extension: str
    mime: str
    plan: ClipPlanner
    feed: Feed
    """Where its pictures come from: ``graph``, the asset's one ffmpeg process (decode once, every
    output); ``seek``, a quick ffmpeg run of its own on the source (a sparse output inside the graph
    would hold back every other output: ffmpeg queues their frames until the sparse one gets its
    next frame, gigabytes at 1080p); ``text``, none: it is written from the subtitles."""
    has_audio: bool = False
    index: str | None = None
    """The rendition is a folder of objects; its key names this index file inside it."""
    family: ClassVar[Family] = "video"


def _plan_mp4(branch: Branch, out: ClipOutput) -> Shape:
    assert isinstance(out, Mp4Output)
    if out.from_rung:
        rung = next(r for r in branch.rungs if r.name == branch.alias[out.from_rung])
        return Shape(rung.frame, branch.rate, from_rung=rung.name)
    return Shape(plan_frame(branch.info, (out.width, out.height), branch.spec.frame), branch.output_rate)


def _plan_hls(branch: Branch, out: ClipOutput) -> Shape:
    assert isinstance(out, HlsOutput)
    return Shape(branch.rungs[0].frame, branch.rate, rungs=branch.rungs)


def _plan_xdcam(branch: Branch, out: ClipOutput) -> Shape:
    assert isinstance(out, XdcamOutput)
    return Shape(plan_frame(branch.info, (1920, 1080), "fill"), PAL_FRAMES, branch.cadence)


def _plan_poster(branch: Branch, out: ClipOutput) -> Shape:
    assert isinstance(out, PosterOutput)
    return Shape(plan_frame(branch.info, (out.width, 9999), branch.spec.frame), branch.output_rate,
                 moment=out.at)


def _plan_sprite(branch: Branch, out: ClipOutput) -> Shape:
    assert isinstance(out, SpriteOutput)
    return Shape(plan_frame(branch.info, (out.width, 9999), branch.spec.frame), branch.output_rate)


def _plan_webvtt(branch: Branch, out: ClipOutput) -> Shape | None:
    assert isinstance(out, WebVttOutput)
    if not branch.cues:
        return None
    return Shape(plan_frame(branch.info, (16, 16), "fit"), branch.rate, cues=branch.cues)


K = TypeVar("K", StillKind, ClipKind, AudioKind)


def _by_name(*kinds: K) -> Mapping[str, K]:
    return {kind.name: kind for kind in kinds}


STILL_KINDS: Mapping[str, StillKind] = _by_name(
    StillKind("jpeg", "jpg", "image/jpeg"),
    StillKind("webp", "webp", "image/webp"),
    StillKind("avif", "avif", "image/avif"),
    StillKind("png", "png", "image/png"),
)
"""Image renditions by ``format``."""

CLIP_KINDS: Mapping[str, ClipKind] = _by_name(
    ClipKind("mp4", "mp4", "video/mp4", _plan_mp4, "graph", has_audio=True),
    ClipKind("hls", "m3u8", "application/vnd.apple.mpegurl", _plan_hls, "graph", has_audio=True,
             index="master.m3u8"),
    ClipKind("xdcam", "mxf", "application/mxf", _plan_xdcam, "graph", has_audio=True),
    ClipKind("poster", "jpg", "image/jpeg", _plan_poster, "seek"),
    ClipKind("sprite", "vtt", "text/vtt", _plan_sprite, "seek", index="thumbnails.vtt"),
    ClipKind("webvtt", "vtt", "text/vtt", _plan_webvtt, "text"),
)
"""Clip outputs by ``type`` (``[[video.outputs]]``)."""

AUDIO_KINDS: Mapping[str, AudioKind] = _by_name(
    AudioKind("bwf", "wav", "audio/wav"),
    AudioKind("aac", "m4a", "audio/mp4"),
    AudioKind("mp3", "mp3", "audio/mpeg"),
)
"""Audio outputs by ``type`` (``[[audio.outputs]]``)."""

Kind = StillKind | ClipKind | AudioKind
KINDS: Mapping[str, Kind] = {**STILL_KINDS, **CLIP_KINDS, **AUDIO_KINDS}
"""Every kind by name (names are unique across families)."""
