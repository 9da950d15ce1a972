"""Render clip renditions: loudness pass 1, one ffmpeg process for everything, then checks.

Each output is read back independently: ffprobe for streams, sizes, rates and field order,
``ebur128`` for loudness. Those measured facts, not the plan's intentions, go into the manifest.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any

from pipeline.errors import RenderError
from pipeline.ingest.info import AVInfo
from pipeline.model import subtitles
from pipeline.model.manifest_types import AudioStream, Source, VideoStream
from pipeline.model.presets import HlsOutput, SpriteOutput
from pipeline.plan.video import AudioPlan, BranchPlan, Frame, OutputPlan, VideoPlan
from pipeline.render.av import hls, loudness
from pipeline.render.av.graph import GraphicsTrack, build_argv, rung_target, still_argv
from pipeline.render.av.runner import GLOBAL_ARGS, binary, ffprobe_json, input_args, run_capture, run_ffmpeg
from pipeline.render.graphics import text
from pipeline.render.graphics.track import Timed, write_track
from pipeline.storage import file_sha256

_DEMUXER = {"mp4": "mov", "xdcam": "mxf", "poster": "image2", "bwf": "wav", "aac": "mov", "mp3": "mp3"}


@dataclass(frozen=True)
class RenderedAV:
    plan: OutputPlan | AudioPlan
    path: Path
    bytes: int
    sha256: str
    facts: dict[str, Any]
    """Measured on the output (duration, bitrate, streams, loudness...): its manifest entry but the
    head, as JSON (:func:`pipeline.model.manifest_types.rendition` types it)."""
    extras: tuple[tuple[str, Path, str], ...] = ()
    """Objects stored before the main file (HLS segments and playlists): key, file, type."""


def time_limit(info: AVInfo) -> float:
    """Seconds a whole asset render may take before it is killed (about 10x real time)."""
    return 120.0 + info.duration * 10.0


def _rate(text: str) -> float:
    try:
        return round(float(Fraction(text)), 3)
    except (ValueError, ZeroDivisionError):
        return 0.0


def _facts(plan: OutputPlan | AudioPlan, path: Path, timeout: float) -> dict[str, Any]:
    demuxer = _DEMUXER[plan.spec.type]
    data = ffprobe_json(path, demuxer, timeout=timeout)
    streams = data.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    audios = [s for s in streams if s.get("codec_type") == "audio"]
    facts: dict[str, Any] = {}
    if isinstance(plan, OutputPlan):
        if video is None:
            raise RenderError(f"{plan.preset} {plan.name}: the output has no picture", code="render-check")
        facts.update(width=int(video["width"]), height=int(video["height"]))
        if plan.spec.type == "poster":
            return facts
        facts["video"] = {"codec": video.get("codec_name"), "pix_fmt": video.get("pix_fmt"),
                          "fps": _rate(video.get("r_frame_rate", "0")),
                          "field_order": video.get("field_order", "progressive")}
    fmt = data.get("format") or {}
    facts["duration"] = round(float(fmt.get("duration") or 0), 3)
    facts["bitrate"] = int(fmt.get("bit_rate") or 0)
    if audios:
        facts["audio"] = {"codec": audios[0].get("codec_name"), "tracks": len(audios),
                          "channels": int(audios[0].get("channels") or 0),
                          "sample_rate": int(audios[0].get("sample_rate") or 0)}
        level = loudness.level(path, demuxer, timeout, mono_pair=plan.spec.type == "xdcam")
        if math.isfinite(level.integrated) and level.integrated > -70:   # silence has no loudness
            facts["loudness"] = {"integrated": level.integrated, "true_peak": level.true_peak}
    return facts


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


def _package(out: OutputPlan, files: dict[str, Path], folder: Path, gop_seconds: float,
             timeout: float) -> tuple[Path, dict[str, Any], tuple[tuple[str, Path, str], ...]]:
    """Cut the ladder into segments and playlists; return the master, its facts, the rest."""
    assert isinstance(out.spec, HlsOutput)
    rungs = [hls.read_rung(r.name, files[r.name], r.frame.width, r.frame.height, float(out.fps))
             for r in out.rungs]
    written = hls.package(rungs, folder, max(1, round(out.spec.segment_seconds / gop_seconds)))
    prefix = out.key.rsplit("/", 1)[0] + "/"
    extras = tuple((prefix + w.name, w.path, w.mime) for w in written if w.name != "master.m3u8")
    master = next(w.path for w in written if w.name == "master.m3u8")
    top = out.rungs[0]
    level = (loudness.level(files[top.name], "mov", timeout) if "mp4a" in rungs[0].codecs
             else None)
    facts: dict[str, Any] = {
        "width": top.frame.width, "height": top.frame.height,
        "duration": round(sum(f.duration for f in rungs[0].fragments), 3),
        "variants": [{"name": r.name, "width": r.width, "height": r.height, "codecs": r.codecs,
                      "playlist": f"{prefix}{r.name}/index.m3u8",
                      "iframe_playlist": f"{prefix}{r.name}/iframes.m3u8"} for r in rungs],
        "segments": [{"key": key, "bytes": path.stat().st_size, "sha256": file_sha256(path)}
                     for key, path, mime in extras if not mime.endswith("mpegurl")],
        "playlists": [{"key": key, "bytes": path.stat().st_size, "sha256": file_sha256(path)}
                      for key, path, mime in extras if mime.endswith("mpegurl")],
    }
    if level is not None and math.isfinite(level.integrated) and level.integrated > -70:
        facts["loudness"] = {"integrated": level.integrated, "true_peak": level.true_peak}
    return master, facts, extras


def _sprite(out: OutputPlan, scratch: Path, duration: float
            ) -> tuple[Path, dict[str, Any], tuple[tuple[str, Path, str], ...]]:
    """Name the sheets ffmpeg wrote and write their WebVTT index."""
    spec = out.spec
    assert isinstance(spec, SpriteOutput)
    sheets = sorted(scratch.glob(f"{out.spec_hash[:24]}-sheet-*.jpg"))
    if not sheets:
        raise RenderError(f"{out.preset} {out.name}: ffmpeg wrote no thumbnail sheet", code="render-check")
    width, height = out.frame.width, out.frame.height
    per_sheet = spec.columns * spec.rows
    count = max(1, math.ceil(duration / spec.interval - 1e-6))
    lines = ["WEBVTT", ""]
    for index in range(count):
        sheet, cell = divmod(index, per_sheet)
        row, column = divmod(cell, spec.columns)
        start, end = index * spec.interval, min((index + 1) * spec.interval, duration)
        lines += [f"{subtitles.stamp(start)} --> {subtitles.stamp(end)}",
                  f"sprite-{sheet:03d}.jpg#xywh={column * width},{row * height},{width},{height}", ""]
    index_file = scratch / f"{out.spec_hash[:24]}-thumbnails.vtt"
    index_file.write_text("\n".join(lines), encoding="utf-8")
    prefix = out.key.rsplit("/", 1)[0] + "/"
    extras = tuple((f"{prefix}sprite-{n:03d}.jpg", path, "image/jpeg") for n, path in enumerate(sheets))
    facts: dict[str, Any] = {
        "width": width, "height": height, "thumbnails": count, "interval": spec.interval,
        "sheets": [{"key": key, "bytes": path.stat().st_size, "sha256": file_sha256(path)}
                     for key, path, _mime in extras]}
    return index_file, facts, extras


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


def _branch(plan: VideoPlan, out: OutputPlan) -> BranchPlan:
    return next(b for b in plan.branches if out in b.outputs)


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
        targets[out.key] = scratch / f"{out.spec_hash[:24]}.{out.extension}"
        if isinstance(out, OutputPlan) and out.spec.type == "sprite":
            targets[out.key] = scratch / f"{out.spec_hash[:24]}-sheet-%03d.jpg"
    for ladder in plan.outputs:
        for rung in ladder.rungs:
            targets[rung_target(ladder, rung.name)] = scratch / f"{ladder.spec_hash[:24]}-{rung.name}.mp4"
    argv = build_argv(plan, source, targets, measured, _graphics(plan, scratch))
    if any(getattr(o, "encoded", True) for o in outputs):
        run_ffmpeg(argv, duration=info.duration, time_limit=limit, on_progress=on_progress)
    for still in plan.outputs:
        if still.spec.type in ("poster", "sprite"):
            run_capture(still_argv(still, info, source, targets[still.key]), limit / 4)
    ladders = {o.name: o for o in plan.outputs if o.rungs}
    done = []
    for out in outputs:
        path = targets[out.key]
        extras: tuple[tuple[str, Path, str], ...] = ()
        if isinstance(out, AudioPlan):
            facts = _facts(out, path, limit / 4)
        elif out.spec.type == "webvtt":
            path.write_text(subtitles.webvtt(list(plan.cues), plan.language), encoding="utf-8")
            facts = {"cues": len(plan.cues)}
        elif out.spec.type == "sprite":
            path, facts, extras = _sprite(out, scratch, info.video.duration if info.video else info.duration)
        elif out.rungs:
            files = {r.name: targets[rung_target(out, r.name)] for r in out.rungs}
            path, facts, extras = _package(out, files, scratch / f"{out.spec_hash[:24]}-hls",
                                           _branch(plan, out).gop_seconds, limit / 4)
        else:
            if out.from_rung:
                ladder = next(o for o in ladders.values() if o.preset == out.preset)
                _remux(targets[rung_target(ladder, out.from_rung)], path, limit / 4)
            if not path.is_file() or path.stat().st_size == 0:
                raise RenderError(f"{out.preset} {out.name}: ffmpeg wrote nothing",
                                  code="render-check", command=argv)
            facts = _facts(out, path, limit / 4)
        rendered = RenderedAV(plan=out, path=path, bytes=path.stat().st_size,
                              sha256=file_sha256(path), facts=facts, extras=extras)
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
