"""Render clip renditions: loudness pass 1, one ffmpeg process for everything, then checks.

Each output is read back independently: ffprobe for streams, sizes, rates and field order,
``ebur128`` for loudness. Those measured facts, not the plan's intentions, go into the manifest.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from pipeline import loudness
from pipeline.avprobe import AVInfo
from pipeline.errors import RenderError
from pipeline.ffmpeg import ffprobe_json, run_ffmpeg
from pipeline.ffmpeg_graph import build_argv
from pipeline.storage import file_sha256
from pipeline.video_plan import OutputPlan, VideoPlan

_DEMUXER = {"mp4": "mov", "xdcam": "mxf", "poster": "image2"}


@dataclass(frozen=True)
class RenderedAV:
    plan: OutputPlan
    path: Path
    bytes: int
    sha256: str
    facts: dict[str, Any]
    """Measured: duration, bitrate, video and audio stream facts, loudness."""


def time_limit(info: AVInfo) -> float:
    """Seconds a whole asset render may take before it is killed (about 10x real time)."""
    return 120.0 + info.duration * 10.0


def _rate(text: str) -> float:
    try:
        return round(float(Fraction(text)), 3)
    except (ValueError, ZeroDivisionError):
        return 0.0


def _facts(plan: OutputPlan, path: Path, timeout: float) -> dict[str, Any]:
    data = ffprobe_json(path, _DEMUXER[plan.spec.type], timeout=timeout)
    streams = data.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    audios = [s for s in streams if s.get("codec_type") == "audio"]
    if video is None:
        raise RenderError(f"{plan.preset} {plan.name}: the output has no picture", code="render-check")
    facts: dict[str, Any] = {"width": int(video["width"]), "height": int(video["height"])}
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
        level = loudness.level(path, _DEMUXER[plan.spec.type], timeout,
                               mono_pair=plan.spec.type == "xdcam")
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


def render_video(source: Path, plan: VideoPlan, scratch: Path,
                 on_progress: Callable[[float], None] | None = None,
                 on_done: Callable[[RenderedAV], None] | None = None) -> list[RenderedAV]:
    """Run the plan's single ffmpeg process into ``scratch`` and check every output."""
    info = plan.info
    outputs = plan.outputs
    if not outputs:
        return []
    limit = time_limit(info)
    measured = None
    if info.audio is not None and plan.loudness_targets:
        measured = loudness.measure(source, info.demuxer, timeout=limit / 4)
    targets = {o.key: scratch / f"{o.spec_hash[:24]}.{o.extension}" for o in outputs}
    gops = {b.preset: 2.0 for b in plan.branches}
    argv = build_argv(plan, source, targets, measured, gops)
    run_ffmpeg(argv, duration=info.duration, time_limit=limit, on_progress=on_progress)
    done = []
    for out in outputs:
        path = targets[out.key]
        if not path.is_file() or path.stat().st_size == 0:
            raise RenderError(f"{out.preset} {out.name}: ffmpeg wrote nothing", code="render-check",
                              command=argv)
        rendered = RenderedAV(plan=out, path=path, bytes=path.stat().st_size,
                              sha256=file_sha256(path), facts=_facts(out, path, limit / 4))
        _check_duration(rendered, info, argv)
        done.append(rendered)
        if on_done is not None:
            on_done(rendered)
    return done


def source_facts(info: AVInfo) -> dict[str, Any]:
    """What the manifest says about a clip's source."""
    facts: dict[str, Any] = {"duration": round(info.duration, 3)}
    if info.video is not None:
        v = info.video
        facts.update(width=v.width, height=v.height, video={
            "codec": v.codec, "pix_fmt": v.pix_fmt, "fps": round(float(v.fps), 3),
            "field_order": v.field_order, "rotation": v.rotation, "vfr": v.vfr})
    if info.audio is not None:
        facts["audio"] = {"codec": info.audio.codec, "channels": info.audio.channels,
                          "sample_rate": info.audio.sample_rate}
    return facts
