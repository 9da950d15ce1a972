"""Plan clip renditions: frame rates, field handling, frame geometry, keys. Pure, no ffmpeg.

One plan per asset covers every preset: the renderer turns it into ONE ffmpeg process that
decodes the source once and writes every output (see :mod:`pipeline.render.av.graph`). What
differs between output types (picture, rate, file) is declared per kind in
:mod:`pipeline.plan.kinds`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from typing import Literal

from pipeline.ingest.info import AVInfo
from pipeline.model.embedded_text import EmbeddedText
from pipeline.model.keys import rendition_key, spec_hash
from pipeline.model.presets import CaptionStyle, HlsOutput, LogoSpec, Loudness, Preset
from pipeline.model.story import LowerThird
from pipeline.model.subtitles import Cue
from pipeline.plan.audio import AudioPlan as AudioPlan
from pipeline.plan.audio import plan_audio
from pipeline.plan.frames import Cadence, Frame, RungPlan, natural_rate, pal_cadence, plan_rungs
from pipeline.plan.generations import generation_material
from pipeline.plan.kinds import CLIP_KINDS, Branch, ClipKind, ClipOutput, FileOfKind


@dataclass(frozen=True)
class OutputPlan(FileOfKind):
    preset: str
    name: str
    spec: ClipOutput
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
    def kind(self) -> ClipKind:
        return CLIP_KINDS[self.spec.type]

    @property
    def frames(self) -> tuple[Frame, ...]:
        """The pictures this output takes from its branch (one per rung for HLS)."""
        if self.rungs:
            return tuple(r.frame for r in self.rungs)
        return (self.frame,) if self.encoded else ()

    @property
    def has_audio(self) -> bool:
        return self.kind.has_audio

    @property
    def encoded(self) -> bool:
        """False for outputs that are not fed by the main graph: an MP4 remuxed from an HLS rung,
        and the kinds whose pictures come from elsewhere (see :attr:`ClipKind.feed`)."""
        return self.from_rung is None and self.kind.feed == "graph"


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


    def branch_of(self, out: OutputPlan) -> BranchPlan:
        """The branch (preset) that makes ``out``."""
        return next(b for b in self.branches if out in b.outputs)


def plan_video(
    info: AVInfo,
    asset_sha256: str,
    presets: list[Preset],
    text: EmbeddedText,
    lower_third: LowerThird | None = None,
    poster_time: float | None = None,
    branded: bool = False,
    cues: tuple[Cue, ...] = (),
    generations: Mapping[str, str] | None = None,
) -> VideoPlan:
    """Every clip (or audio) rendition of one asset, grouped by preset. ``generations``: as for
    :func:`pipeline.plan.image.plan_image`."""
    branches = []
    audio: list[AudioPlan] = []
    for preset in presets:
        audio += plan_audio(info, asset_sha256, preset, generations)
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
        branch = Branch(info=info, spec=spec, rate=rate, cadence=cadence, rungs=rungs, alias=alias,
                        cues=cues)
        for out in spec.outputs:
            kind = CLIP_KINDS[out.type]
            shape = kind.plan(branch, out)
            if shape is None:
                continue
            on_ladder = bool(shape.rungs) or shape.from_rung is not None
            at = poster_time if poster_time is not None else info.duration * (
                shape.moment if shape.moment is not None else 0.1)
            at = min(max(at, 0.0), max(info.duration - 0.1, 0.0))
            material = {
                "preset": preset.label, "output": out.model_dump(mode="json"),
                "frame": asdict(shape.frame), "fps": str(shape.fps), "cadence": shape.cadence,
                "branch": {"rate": str(rate), "frame": spec.frame, "gop": spec.gop_seconds,
                           "loudness": spec.loudness.model_dump() if spec.loudness else None},
                "logo": logo.model_dump(mode="json") if logo else None,
                "graphics": preset.graphics_hash if logo or strap or burned else None,
                "lower_third": strap.model_dump() if strap else None,
                "subtitles": [asdict(c) for c in burned] or None,
                "cues": [asdict(c) for c in shape.cues] if shape.cues is not None else None,
                "caption_style": preset.caption.model_dump() if strap or burned else None,
                "poster_time": round(at, 3) if shape.moment is not None else None,
                "rungs": [asdict(r) for r in rungs] if on_ladder else None,
                "ladder": ladder.model_dump(mode="json") if on_ladder and ladder else None,
                **generation_material(generations, preset),
            }
            digest = spec_hash(material)
            key = rendition_key(asset_sha256, preset.label, out.name, digest, kind.extension)
            if kind.index is not None:
                key = key.removesuffix("." + kind.extension) + "/" + kind.index
            outputs.append(OutputPlan(preset=preset.label, name=out.name, spec=out, frame=shape.frame,
                                      fps=shape.fps, cadence=shape.cadence, poster_time=at,
                                      spec_hash=digest, key=key, rungs=shape.rungs,
                                      from_rung=shape.from_rung))
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
