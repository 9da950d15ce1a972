"""Plan clip renditions: frame rates, field handling, frame geometry, keys. Pure, no ffmpeg.

One plan per asset covers every preset: the renderer turns it into ONE ffmpeg process that
decodes the source once and writes every output (see :mod:`pipeline.render.av.graph`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from typing import Literal

from pipeline.ingest.info import AVInfo
from pipeline.model.embedded_text import EmbeddedText
from pipeline.model.keys import rendition_key, spec_hash
from pipeline.model.presets import (
    AudioOutput,
    CaptionStyle,
    HlsOutput,
    HlsRung,
    LogoSpec,
    Loudness,
    Mp4Output,
    PosterOutput,
    Preset,
    SpriteOutput,
    WebVttOutput,
    XdcamOutput,
)
from pipeline.model.story import LowerThird
from pipeline.model.subtitles import Cue

STANDARD_RATES = tuple(Fraction(r) for r in ("24000/1001", "24", "25", "30000/1001", "30", "50",
                                             "60000/1001", "60"))
PAL_FIELDS = Fraction(50)
PAL_FRAMES = Fraction(25)

Geometry = Literal["scale", "blur-fill"]
Cadence = Literal["progressive", "psf", "weave", "keep-fields"]
"""How interlaced output is made: ``psf`` 25p flagged TFF; ``weave`` 50p -> 50 fields
(``tinterlace``); ``keep-fields`` the source is already 25i and stays so."""


@dataclass(frozen=True)
class Frame:
    """The picture an output gets: its size and how the source fills it."""

    width: int
    height: int
    geometry: Geometry
    inner: tuple[int, int]
    """Size of the whole source picture inside the frame (equals the frame for ``scale``)."""


@dataclass(frozen=True)
class RungPlan:
    """One HLS rung: its picture and bitrates (kb/s)."""

    name: str
    frame: Frame
    bitrate: int
    maxrate: int


@dataclass(frozen=True)
class OutputPlan:
    preset: str
    name: str
    spec: Mp4Output | HlsOutput | XdcamOutput | PosterOutput | SpriteOutput | WebVttOutput
    frame: Frame
    fps: Fraction
    """Frames per second written (25 for 1080i50: two fields a frame)."""
    cadence: Cadence
    poster_time: float
    spec_hash: str
    key: str
    rungs: tuple[RungPlan, ...] = ()
    """HLS only: the ladder, largest first, never upscaled, no two rungs alike."""
    from_rung: str | None = None
    """MP4 only: remuxed from this HLS rung instead of encoded."""

    @property
    def frames(self) -> tuple[Frame, ...]:
        """The pictures this output takes from its branch (one per rung for HLS)."""
        if self.rungs:
            return tuple(r.frame for r in self.rungs)
        return (self.frame,) if self.encoded else ()

    @property
    def extension(self) -> str:
        return {"mp4": "mp4", "hls": "m3u8", "xdcam": "mxf", "poster": "jpg", "sprite": "vtt",
                "webvtt": "vtt"}[self.spec.type]

    @property
    def mime(self) -> str:
        return {"mp4": "video/mp4", "hls": "application/vnd.apple.mpegurl",
                "xdcam": "application/mxf", "poster": "image/jpeg", "sprite": "text/vtt",
                "webvtt": "text/vtt"}[self.spec.type]

    @property
    def has_audio(self) -> bool:
        return self.spec.type not in ("poster", "sprite", "webvtt")

    @property
    def encoded(self) -> bool:
        """False for outputs that are not fed by the main graph: an MP4 remuxed from an HLS rung,
        a WebVTT sidecar, and the stills (poster, sprite), which come from quick seeks on the
        source instead. A sparse output inside the graph (one frame at 10 %, one every 2 s) holds
        back every other output: ffmpeg queues their frames until the sparse one gets its next
        frame, gigabytes at 1080p."""
        return self.from_rung is None and self.spec.type not in ("webvtt", "poster", "sprite")


@dataclass(frozen=True)
class BranchPlan:
    """One preset's share of the graph: one conform step, its graphics, its outputs."""

    preset: str
    rate: Fraction
    """Progressive frame rate of the branch before any interlacing."""
    deinterlace: bool
    fields: Literal["none", "to-tff", "keep"]
    """What happens to a source's fields in this branch."""
    loudness: Loudness | None
    logo: LogoSpec | None
    logo_file: str | None
    lower_third: LowerThird | None
    outputs: tuple[OutputPlan, ...]
    gop_seconds: float = 2.0
    subtitles: tuple[Cue, ...] = ()
    """Cues burned into this branch's pictures."""
    caption_style: CaptionStyle = field(default_factory=CaptionStyle)
    font_file: str = ""
    language: str = "vi"

    def frame_tree(self) -> dict[Frame, Frame | None]:
        """Every picture size the branch makes, largest first, with the larger picture of the
        same shape it is scaled from (None: built from the source, graphics burned here)."""
        frames = sorted({f for plan in self.outputs for f in plan.frames}, key=lambda f: -f.width * f.height)
        return {frame: next((big for big in frames[:index] if big.geometry == frame.geometry == "scale"
                             and abs(big.width / big.height - frame.width / frame.height) < 0.01), None)
                for index, frame in enumerate(frames)}


AUDIO_FILES = {"bwf": ("wav", "audio/wav"), "aac": ("m4a", "audio/mp4"), "mp3": ("mp3", "audio/mpeg")}


@dataclass(frozen=True)
class AudioPlan:
    """One audio-only rendition (radio): the programme stereo at a loudness, in a format."""

    preset: str
    name: str
    spec: AudioOutput
    spec_hash: str
    key: str

    @property
    def extension(self) -> str:
        return AUDIO_FILES[self.spec.type][0]

    @property
    def mime(self) -> str:
        return AUDIO_FILES[self.spec.type][1]


@dataclass(frozen=True)
class VideoPlan:
    """Every clip or audio rendition of one asset: made by ONE ffmpeg process."""

    info: AVInfo
    branches: tuple[BranchPlan, ...]
    audio: tuple[AudioPlan, ...] = ()
    cues: tuple[Cue, ...] = ()
    """The asset's subtitles (for sidecars; burning is per branch)."""
    language: str = "vi"

    @property
    def outputs(self) -> list[OutputPlan]:
        return [o for b in self.branches for o in b.outputs]

    def only(self, keys: set[str]) -> VideoPlan:
        """The same plan reduced to the outputs whose keys are given (the rest are stored).
        An MP4 remuxed from an HLS rung brings its ladder along."""
        wanted = set(keys)
        for plan in self.outputs:
            if plan.key in keys and plan.from_rung:
                wanted |= {o.key for o in self.outputs if o.rungs and o.preset == plan.preset}
        branches = tuple(replace(b, outputs=tuple(o for o in b.outputs if o.key in wanted))
                         for b in self.branches)
        return VideoPlan(info=self.info, branches=tuple(b for b in branches if b.outputs),
                         audio=tuple(a for a in self.audio if a.key in wanted),
                         cues=self.cues, language=self.language)

    @property
    def everything(self) -> list[OutputPlan | AudioPlan]:
        """Video outputs then audio outputs: every rendition this plan makes."""
        return [*self.outputs, *self.audio]

    @property
    def loudness_targets(self) -> list[Loudness]:
        return [b.loudness for b in self.branches if b.loudness is not None] + [
            a.spec.loudness for a in self.audio]


def nearest_rate(rate: Fraction) -> Fraction:
    """The standard frame rate closest to ``rate`` (VFR phone clips become CFR at it)."""
    return min(STANDARD_RATES, key=lambda r: abs(float(r) - float(rate)))


def natural_rate(info: AVInfo, max_fps: float) -> Fraction:
    assert info.video is not None
    video = info.video
    rate = nearest_rate(video.avg_fps if video.vfr else video.fps)
    if video.interlaced:
        rate = nearest_rate(rate)  # fields are not frames: a 25i source is 25 frames/s
    while float(rate) > max_fps + 0.01:
        rate = rate / 2
    return rate


def pal_cadence(info: AVInfo) -> tuple[Fraction, Cadence]:
    """Progressive rate of the branch and how 1080i50 is made from it."""
    assert info.video is not None
    video = info.video
    rate = nearest_rate(video.avg_fps if video.vfr else video.fps)
    if video.interlaced and rate == PAL_FRAMES:
        return PAL_FRAMES, "keep-fields"
    if video.interlaced or float(rate) > 40:
        return PAL_FIELDS, "weave"   # 50p/60p, or 30i deinterlaced to 60p: true 50 fields
    return PAL_FRAMES, "psf"          # 24/25/30p: 25 frames, each both fields


def even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def plan_frame(info: AVInfo, box: tuple[int, int], mode: Literal["fit", "fill"]) -> Frame:
    assert info.video is not None
    sw, sh = info.video.width, info.video.height
    if mode == "fit":
        if sh > sw and box[0] > box[1]:
            box = (box[1], box[0])   # a vertical clip gets a vertical box
        k = min(box[0] / sw, box[1] / sh, 1.0)
        size = (even(sw * k), even(sh * k))
        return Frame(size[0], size[1], "scale", size)
    width, height = box
    if abs(sw / sh - width / height) / (width / height) < 0.02:
        return Frame(width, height, "scale", (width, height))
    k = min(width / sw, height / sh)
    return Frame(width, height, "blur-fill", (even(sw * k), even(sh * k)))


def plan_rungs(info: AVInfo, spec: HlsOutput, mode: Literal["fit", "fill"]
               ) -> tuple[tuple[RungPlan, ...], dict[str, str]]:
    """The ladder for this source, and which kept rung stands for each declared one.

    Rungs that would need upscaling collapse onto the same picture; of those the smallest
    declared rung is kept (a 720p source keeps the "720p" rung with its bitrates, not a
    "1080p" rung that is really 720p)."""
    groups: dict[Frame, list[HlsRung]] = {}
    for rung in spec.rungs:
        groups.setdefault(plan_frame(info, (rung.width, rung.height), mode), []).append(rung)
    kept = tuple(RungPlan(same[-1].name, frame, same[-1].bitrate, same[-1].maxrate)
                 for frame, same in groups.items())
    alias = {rung.name: same[-1].name for same in groups.values() for rung in same}
    return kept, alias


def plan_video(
    info: AVInfo,
    asset_sha256: str,
    presets: list[Preset],
    text: EmbeddedText,
    lower_third: LowerThird | None = None,
    poster_time: float | None = None,
    branded: bool = False,
    cues: tuple[Cue, ...] = (),
) -> VideoPlan:
    """Every clip (or audio) rendition of one asset, grouped by preset."""
    branches = []
    audio: list[AudioPlan] = []
    for preset in presets:
        sound = preset.audio
        if sound is not None and info.audio is not None and (info.video is None or sound.from_clips):
            for wanted in sound.outputs:
                digest = spec_hash({"preset": preset.label, "output": wanted.model_dump(mode="json"),
                                    "length": round(info.video.duration, 3) if info.video else None})
                key = rendition_key(asset_sha256, preset.label, wanted.name, digest,
                                    AUDIO_FILES[wanted.type][0])
                audio.append(AudioPlan(preset.label, wanted.name, wanted, digest, key))
        spec = preset.video
        if spec is None or info.video is None:
            continue
        if spec.frame_rate == "pal-interlaced":
            rate, cadence = pal_cadence(info)
        else:
            rate, cadence = natural_rate(info, spec.max_fps), "progressive"
        keep_fields = cadence == "keep-fields"
        logo = preset.logo if not branded else None
        strap = lower_third if spec.lower_third else None
        outputs = []
        ladder = next((o for o in spec.outputs if isinstance(o, HlsOutput)), None)
        rungs, alias = plan_rungs(info, ladder, spec.frame) if ladder else ((), {})
        burned = cues if spec.burn_subtitles else ()
        for out in spec.outputs:
            extra: dict[str, object] = {}
            out_cadence: Cadence
            if isinstance(out, WebVttOutput):
                if not cues:
                    continue
                frame, out_fps, out_cadence = plan_frame(info, (16, 16), "fit"), rate, "progressive"
            elif isinstance(out, HlsOutput):
                frame = rungs[0].frame
                out_fps, out_cadence = rate, "progressive"
                extra["rungs"] = rungs
            elif isinstance(out, Mp4Output) and out.from_rung:
                rung = next(r for r in rungs if r.name == alias[out.from_rung])
                frame, out_fps, out_cadence = rung.frame, rate, "progressive"
                extra["from_rung"] = rung.name
            elif out.type == "xdcam":
                frame = plan_frame(info, (1920, 1080), "fill")
                out_fps, out_cadence = PAL_FRAMES, cadence
            else:
                box = ((out.width, out.height) if isinstance(out, Mp4Output) else (out.width, 9999))
                frame = plan_frame(info, box, spec.frame)
                out_fps = PAL_FRAMES if spec.frame_rate == "pal-interlaced" else rate
                out_cadence = "progressive"
            at = poster_time if poster_time is not None else info.duration * (
                out.at if isinstance(out, PosterOutput) else 0.1)
            at = min(max(at, 0.0), max(info.duration - 0.1, 0.0))
            material = {
                "preset": preset.label, "output": out.model_dump(mode="json"),
                "frame": asdict(frame), "fps": str(out_fps), "cadence": out_cadence,
                "branch": {"rate": str(rate), "frame": spec.frame, "gop": spec.gop_seconds,
                           "loudness": spec.loudness.model_dump() if spec.loudness else None},
                "logo": logo.model_dump(mode="json") if logo else None,
                "graphics": preset.graphics_hash if logo or strap or burned else None,
                "lower_third": strap.model_dump() if strap else None,
                "subtitles": [asdict(c) for c in burned] or None,
                "cues": [asdict(c) for c in cues] if isinstance(out, WebVttOutput) else None,
                "caption_style": preset.caption.model_dump() if strap or burned else None,
                "poster_time": round(at, 3) if out.type == "poster" else None,
                "rungs": [asdict(r) for r in rungs] if extra else None,
                "ladder": ladder.model_dump(mode="json") if extra and ladder else None,
            }
            digest = spec_hash(material)
            plan = OutputPlan(preset=preset.label, name=out.name, spec=out, frame=frame,
                              fps=out_fps, cadence=out_cadence, poster_time=at,
                              spec_hash=digest, key="", **extra)  # type: ignore[arg-type]
            key = rendition_key(asset_sha256, preset.label, out.name, digest, plan.extension)
            if isinstance(out, HlsOutput):
                key = key.removesuffix(".m3u8") + "/master.m3u8"
            elif isinstance(out, SpriteOutput):
                key = key.removesuffix(".vtt") + "/thumbnails.vtt"
            outputs.append(replace(plan, key=key))
        branches.append(BranchPlan(
            preset=preset.label, rate=rate,
            deinterlace=info.video.interlaced and not keep_fields,
            fields="keep" if keep_fields else ("to-tff" if cadence in ("psf", "weave") else "none"),
            loudness=spec.loudness, logo=logo,
            logo_file=str(preset.logo_path) if logo and preset.logo_path else None,
            lower_third=strap, outputs=tuple(outputs), gop_seconds=spec.gop_seconds,
            subtitles=burned, caption_style=preset.caption, font_file=str(preset.font_path),
            language=text.language))
    return VideoPlan(info=info, branches=tuple(branches), audio=tuple(audio), cues=cues,
                     language=text.language)
