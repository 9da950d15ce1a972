"""Render clip renditions: loudness pass 1, one ffmpeg process for everything, then checks.

Each output is then finished by its kind's step (:mod:`pipeline.render.av.outputs`): read back
independently (ffprobe for streams, sizes, rates and field order, ``ebur128`` for loudness),
packaged or indexed. Those measured facts, not the plan's intentions, go into the manifest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from pipeline.errors import RenderError
from pipeline.ingest.info import AVInfo
from pipeline.model.manifest_types import AudioStream, Source, VideoStream
from pipeline.plan.audio import AudioPlan
from pipeline.plan.frames import Frame
from pipeline.plan.video import OutputPlan, VideoPlan
from pipeline.render.av import loudness
from pipeline.render.av.graph import GraphicsTrack, build_argv, still_argv
from pipeline.render.av.outputs import AUDIO_STEPS, CLIP_STEPS, Extras, Finishing, Made, rung_target
from pipeline.render.av.runner import GLOBAL_ARGS, binary, input_args, run_capture, run_ffmpeg
from pipeline.render.graphics import text
from pipeline.render.graphics.track import Timed, write_track
from pipeline.storage import file_sha256


@dataclass(frozen=True)
class RenderedAV:
    plan: OutputPlan | AudioPlan
    path: Path
    bytes: int
    sha256: str
    facts: dict[str, Any]
    """Measured on the output (duration, bitrate, streams, loudness...): its manifest entry but the
    head, as JSON (:func:`pipeline.model.manifest_types.rendition` types it)."""
    extras: Extras = ()
    """Objects stored before the main file (HLS segments and playlists, sprite sheets): key, file,
    type."""


def time_limit(info: AVInfo) -> float:
    """Seconds a whole asset render may take before it is killed: 300 s, and 10 s per second of
    source. A bound for renders that never end, not a pace: the sample story's 12 s clip (13
    renditions) took over 240 s on a busy 2-vCPU host with another render beside it."""
    return 300.0 + info.duration * 10.0


def _check_duration(rendered: RenderedAV, info: AVInfo, argv: list[str]) -> None:
    """A source that ends early (truncated data) makes short outputs: refuse them."""
    duration = rendered.facts.get("duration")
    if duration is not None and duration < info.duration * 0.9 - 0.5:
        raise RenderError(f"the source stops after {duration:.1f} s of its {info.duration:.1f} s:"
                          " the file is truncated or damaged; upload it again", code="truncated",
                          command=argv)


def remux_argv(rung_file: Path, target: Path) -> list[str]:
    """An HLS rung's fragmented MP4 as a progressive MP4 with the index up front: no re-encode."""
    return [binary("ffmpeg"), *GLOBAL_ARGS, *input_args("mov", rung_file), "-map", "0:v", "-map", "0:a?",
            "-c", "copy", "-map_metadata", "-1", "-movflags", "+faststart", "-f", "mp4",
            "file:" + str(target)]


def _remux(rung_file: Path, target: Path, timeout: float) -> None:
    run_capture(remux_argv(rung_file, target), timeout)


def _drawn(graphic: text.Graphic) -> text.Graphic:
    return graphic


def _graphics(plan: VideoPlan, scratch: Path) -> dict[tuple[str, Frame], GraphicsTrack]:
    """Lower thirds and burned subtitles as one image track for every picture size that burns
    them (see :mod:`pipeline.render.graphics.track`)."""
    tracks: dict[tuple[str, Frame], GraphicsTrack] = {}
    info = plan.info
    until = info.video.duration if info.video is not None else info.duration
    for branch in plan.branches:
        if branch.lower_third is None and not branch.subtitles:
            continue
        style, font_file, language = branch.caption_style, branch.font_file, branch.language
        for frame, parent in branch.frame_tree().items():
            if parent is not None:
                continue
            size = (frame.width, frame.height)
            strap = branch.lower_third
            layers: list[list[Timed]] = []
            tops = []
            if strap is not None:
                panel = text.lower_third(strap.name, strap.title, size, style, font_file, language)
                layers.append([Timed(strap.start, strap.end, partial(_drawn, panel))])
                tops.append(panel.y)
            if branch.subtitles:
                layers.append([Timed(cue.start, cue.end, partial(text.subtitle, cue.text, size, style,
                                                                  font_file, language))
                               for cue in branch.subtitles])
                tops.append(text.subtitle_top(size, style, font_file))
            track = write_track(scratch, f"gfx-{branch.preset}-{frame.width}x{frame.height}", size,
                                max(0, min(tops)), layers, until)
            if track is not None:
                tracks[(branch.preset, frame)] = track
    return tracks


def render_video(source: Path, plan: VideoPlan, scratch: Path,
                 on_progress: Callable[[float], None] | None = None,
                 on_done: Callable[[RenderedAV], None] | None = None) -> list[RenderedAV]:
    """Run the plan's single ffmpeg process into ``scratch`` and check every output."""
    info = plan.info
    outputs = plan.everything
    if not outputs:
        return []
    limit = time_limit(info)
    measured = None
    if info.audio is not None and plan.loudness_targets:
        measured = loudness.measure(source, info.demuxer, timeout=limit / 4)
    targets: dict[str, Path] = {}
    for out in outputs:
        files = CLIP_STEPS[out.spec.type].files if isinstance(out, OutputPlan) else None
        targets[out.key] = scratch / (out.spec_hash[:24] + (files or f".{out.extension}"))
    for ladder in plan.outputs:
        for rung in ladder.rungs:
            targets[rung_target(ladder, rung.name)] = scratch / f"{ladder.spec_hash[:24]}-{rung.name}.mp4"
    argv = build_argv(plan, source, targets, measured, _graphics(plan, scratch))
    if any(getattr(o, "encoded", True) for o in outputs):
        run_ffmpeg(argv, duration=info.duration, time_limit=limit, on_progress=on_progress)
    for still in plan.outputs:
        if still.kind.feed == "seek":
            run_capture(still_argv(still, info, source, targets[still.key]), limit / 4)
    ladders = {o.name: o for o in plan.outputs if o.rungs}
    job = Finishing(plan=plan, targets=targets, scratch=scratch, timeout=limit / 4, argv=argv)
    done = []
    for out in outputs:
        made: Made
        if isinstance(out, AudioPlan):
            made = AUDIO_STEPS[out.spec.type].finish(job, out)
        else:
            if out.from_rung:
                ladder = next(o for o in ladders.values() if o.preset == out.preset)
                _remux(targets[rung_target(ladder, out.from_rung)], targets[out.key], limit / 4)
            made = CLIP_STEPS[out.spec.type].finish(job, out)
        rendered = RenderedAV(plan=out, path=made.path, bytes=made.path.stat().st_size,
                              sha256=file_sha256(made.path), facts=made.facts, extras=made.extras)
        _check_duration(rendered, info, argv)
        done.append(rendered)
        if on_done is not None:
            on_done(rendered)
    return done


def source_facts(info: AVInfo, sha256: str, size: int) -> Source:
    """What the manifest says about a clip's (or an audio piece's) source file."""
    v, a = info.video, info.audio
    return Source(
        sha256=sha256, bytes=size, mime=info.mime, duration=round(info.duration, 3),
        width=v.width if v is not None else None, height=v.height if v is not None else None,
        video=VideoStream(codec=v.codec, pix_fmt=v.pix_fmt, fps=round(float(v.fps), 3),
                          field_order=v.field_order, rotation=v.rotation, vfr=v.vfr)
        if v is not None else None,
        audio=AudioStream(codec=a.codec, channels=a.channels, sample_rate=a.sample_rate)
        if a is not None else None)
