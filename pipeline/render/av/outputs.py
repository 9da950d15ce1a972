"""The render step of each clip and audio kind (:mod:`pipeline.plan.kinds`), by name.

A clip kind's step says how its file is made (the last filters on its picture, its encoder and
muxer options, its audio tracks; or, for stills taken straight from the source, that quick run's
options) and how it is made final once ffmpeg is done: read back with ffprobe and ``ebur128`` for
the facts the manifest carries, packaged into segments and playlists, indexed, or written from text.
An audio kind's step gives its encoder options and how its file is read back.

The steps add filters to the streams of :mod:`pipeline.render.av.graph`, which builds the one
ffmpeg command line around them; :mod:`pipeline.render.av.clip` runs it and finishes each output.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from pipeline.errors import RenderError
from pipeline.model import subtitles
from pipeline.model.presets import HlsOutput, Mp4Output, SpriteOutput, XdcamOutput
from pipeline.plan.audio import AudioPlan
from pipeline.plan.frames import Frame
from pipeline.plan.video import BranchPlan, OutputPlan, VideoPlan
from pipeline.render.av import hls, loudness
from pipeline.render.av.runner import ffprobe_json
from pipeline.storage import file_sha256

Stream = Any  # ffmpeg-python nodes are untyped
Extras = tuple[tuple[str, Path, str], ...]
"""Objects stored before an output's main file (segments, playlists, sheets): key, file, type."""


def rate_arg(value: Fraction) -> str:
    """A frame rate as ffmpeg's ``fps`` filter takes it: ``num/den``."""
    return f"{value.numerator}/{value.denominator}"


def rung_target(plan: OutputPlan, rung: str) -> str:
    """The ``targets`` key of one HLS rung's fragmented MP4."""
    return f"{plan.key}#{rung}"


# --- encoder and muxer options -------------------------------------------------------------

XDCAM_VIDEO: dict[str, object] = {
    "c:v": "mpeg2video", "profile:v": 0, "level:v": 2, "pix_fmt": "yuv422p",
    "bufsize": 17825792, "rc_init_occupancy": 17825792, "rc_max_vbv_use": 1, "rc_min_vbv_use": 1,
    "g": 12, "bf": 2, "sc_threshold": 1000000000, "flags": "+ildct+ilme", "alternate_scan": 1,
    "intra_vlc": 1, "non_linear_quant": 1, "dc": 10, "qmin": 1, "qmax": 12, "lmin": 118,
    "seq_disp_ext": 1, "video_format": "component", "color_primaries": "bt709",
    "color_trc": "bt709", "colorspace": "bt709", "color_range": "tv", "aspect": "16:9",
}
"""XDCAM HD422: MPEG-2 4:2:2P@HL (the MXF muxer labels it so only with profile 0 / level 2),
CBR with the 422P@HL VBV buffer, long GOP N=12 M=3, interlaced DCT and motion."""

X264_THREADS = 2
"""Per x264 encoder: one graph feeds up to a dozen of them at once, so each needs few threads;
x264's default (1.5 x cores) only multiplies the frames held in flight. (With threads, x264's
VBV depends on thread timing: a re-render of a clip can differ in bytes, never in key or spec.)"""


def _x264(fps: Fraction, gop_seconds: float, preset: str, profile: str,
          level: str) -> dict[str, object]:
    gop = max(1, round(float(fps) * gop_seconds))
    return {"c:v": "libx264", "preset": preset, "profile:v": profile, "level:v": level,
            "g": gop, "keyint_min": gop, "sc_threshold": 0, "threads": X264_THREADS,
            "color_primaries": "bt709",
            "color_trc": "bt709", "colorspace": "bt709"}


def _aac(bitrate: int) -> dict[str, object]:
    return {"c:a": "aac", "b:a": f"{bitrate}k", "ac": 2, "ar": 48000}


def _level(frame: Frame, fps: Fraction) -> str:
    pixels = frame.width * frame.height * float(fps)
    return "3.1" if pixels <= 1280 * 720 * 30 else ("4.1" if pixels <= 1920 * 1088 * 30 else "4.2")


def _mp4_options(plan: OutputPlan, gop_seconds: float, rung: str | None) -> dict[str, object]:
    spec = plan.spec
    assert isinstance(spec, Mp4Output)
    return {**_x264(plan.fps, gop_seconds, spec.x264_preset, spec.profile, spec.level),
            "crf": spec.crf, "maxrate": f"{spec.maxrate}k", "bufsize": f"{spec.maxrate * 2}k",
            **_aac(spec.audio_bitrate), "movflags": "+faststart", "f": "mp4"}


def _hls_rung_options(plan: OutputPlan, gop_seconds: float, rung: str | None) -> dict[str, object]:
    """One rung of the ladder as a fragmented MP4, cut into segments afterwards."""
    spec = plan.spec
    assert isinstance(spec, HlsOutput)
    step = next(r for r in plan.rungs if r.name == rung)
    level = _level(step.frame, plan.fps)
    return {**_x264(plan.fps, gop_seconds, spec.x264_preset, "high", level),
            "b:v": f"{step.bitrate}k", "maxrate": f"{step.maxrate}k",
            "bufsize": f"{step.maxrate * 2}k", **_aac(spec.audio_bitrate),
            "movflags": "+frag_keyframe+empty_moov+default_base_moof+negative_cts_offsets",
            "f": "mp4"}


def _xdcam_options(plan: OutputPlan, gop_seconds: float, rung: str | None) -> dict[str, object]:
    spec = plan.spec
    assert isinstance(spec, XdcamOutput)
    rate = f"{spec.bitrate * 1000}k"
    return {**XDCAM_VIDEO, "b:v": rate, "minrate": rate, "maxrate": rate,
            "timecode": spec.timecode, "c:a": "pcm_s24le", "ar": 48000, "f": "mxf"}


# --- pictures and sound --------------------------------------------------------------------

def _progressive(stream: Stream, plan: OutputPlan, branch: BranchPlan) -> Stream:
    if branch.fields == "keep":
        stream = stream.filter("bwdif", mode="send_frame")
    if plan.fps != branch.rate:
        stream = stream.filter("fps", rate_arg(plan.fps))
    return stream.filter("setfield", "prog").filter("format", "yuv420p")


def _interlaced(stream: Stream, plan: OutputPlan, branch: BranchPlan) -> Stream:
    """1080i50 top field first, 4:2:2: woven from 50p, or the source's own fields kept."""
    if plan.cadence == "weave":
        stream = stream.filter("tinterlace", mode="interleave_top")
    elif plan.cadence == "keep-fields":
        stream = stream.filter("fieldorder", "tff")
    return stream.filter("setfield", "tff").filter("format", "yuv422p")


def _stereo(track: Stream, plan: OutputPlan) -> list[Stream]:
    return [track]


def _mono_tracks(track: Stream, plan: OutputPlan) -> list[Stream]:
    """The programme stereo as mono tracks, pair after pair (1-2, then repeats)."""
    spec = plan.spec
    assert isinstance(spec, XdcamOutput)
    count = spec.audio_tracks // 2
    if count == 1:
        pairs = [track]
    else:
        node = track.filter_multi_output("asplit", count)
        pairs = [node[i] for i in range(count)]
    out = []
    for pair in pairs:
        mono = pair.filter_multi_output("channelsplit", channel_layout="stereo")
        out += [mono[0], mono[1]]
    return out


@dataclass(frozen=True)
class Still:
    """A picture taken straight from the source in a quick ffmpeg run of its own."""

    seek: Callable[[OutputPlan], dict[str, object]]
    """Input options: where and how roughly to decode."""
    finish: Callable[[Stream, OutputPlan], tuple[Stream, dict[str, object]]]
    """Its filters after the scale, and its output options."""


def _poster_seek(plan: OutputPlan) -> dict[str, object]:
    """Input seeking decodes from the keyframe before the poster time only."""
    return {"ss": f"{plan.poster_time:.3f}"}


def _poster(stream: Stream, plan: OutputPlan) -> tuple[Stream, dict[str, object]]:
    return stream.filter("format", "yuvj420p"), {"frames:v": 1, "q:v": 2, "update": 1}


def _sprite_seek(plan: OutputPlan) -> dict[str, object]:
    return {"skip_frame": "noref", "skip_loop_filter": "all"}   # 160 px: a rough decode will do


def _sprite_sheets(stream: Stream, plan: OutputPlan) -> tuple[Stream, dict[str, object]]:
    """One frame every ``interval`` seconds, tiled into sheets."""
    spec = plan.spec
    assert isinstance(spec, SpriteOutput)
    stream = (stream.filter("fps", f"1/{spec.interval:g}")
              .filter("tile", f"{spec.columns}x{spec.rows}").filter("format", "yuvj420p"))
    return stream, {"q:v": 4, "start_number": 0, "fps_mode": "passthrough"}


# --- finishing: files made final, facts read back ------------------------------------------

@dataclass(frozen=True)
class Finishing:
    """One asset's render once ffmpeg is done: what its outputs are finished from."""

    plan: VideoPlan
    targets: Mapping[str, Path]
    """Output key (or :func:`rung_target`) -> the file ffmpeg wrote."""
    scratch: Path
    timeout: float
    """Seconds each read-back may take."""
    argv: list[str]
    """The render's command line, named in errors."""


@dataclass(frozen=True)
class Made:
    """A finished output: its main file, the facts measured on it, the objects stored before it."""

    path: Path
    facts: dict[str, Any]
    extras: Extras = ()


Picture = Literal["none", "size", "full"]


def _probe_rate(text: str) -> float:
    try:
        return round(float(Fraction(text)), 3)
    except (ValueError, ZeroDivisionError):
        return 0.0


def _facts(plan: OutputPlan | AudioPlan, path: Path, timeout: float, demuxer: str,
           picture: Picture = "none", mono_pairs: bool = False) -> dict[str, Any]:
    """ffprobe and ``ebur128`` on the written file: its picture (``size``: width and height only;
    ``full``: codec, pixel format, rate, field order too), duration, bitrate, sound and loudness."""
    data = ffprobe_json(path, demuxer, timeout=timeout)
    streams = data.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    audios = [s for s in streams if s.get("codec_type") == "audio"]
    facts: dict[str, Any] = {}
    if picture != "none":
        if video is None:
            raise RenderError(f"{plan.preset} {plan.name}: the output has no picture", code="render-check")
        facts.update(width=int(video["width"]), height=int(video["height"]))
        if picture == "size":
            return facts
        facts["video"] = {"codec": video.get("codec_name"), "pix_fmt": video.get("pix_fmt"),
                          "fps": _probe_rate(video.get("r_frame_rate", "0")),
                          "field_order": video.get("field_order", "progressive")}
    fmt = data.get("format") or {}
    facts["duration"] = round(float(fmt.get("duration") or 0), 3)
    facts["bitrate"] = int(fmt.get("bit_rate") or 0)
    if audios:
        facts["audio"] = {"codec": audios[0].get("codec_name"), "tracks": len(audios),
                          "channels": int(audios[0].get("channels") or 0),
                          "sample_rate": int(audios[0].get("sample_rate") or 0)}
        level = loudness.level(path, demuxer, timeout, mono_pair=mono_pairs)
        if math.isfinite(level.integrated) and level.integrated > -70:   # silence has no loudness
            facts["loudness"] = {"integrated": level.integrated, "true_peak": level.true_peak}
    return facts


Finish = Callable[[Finishing, OutputPlan], Made]


def _read_back(demuxer: str, picture: Picture, mono_pairs: bool = False) -> Finish:
    """Finish a single file: refuse an empty one, then measure it."""
    def finish(job: Finishing, out: OutputPlan) -> Made:
        path = job.targets[out.key]
        if not path.is_file() or path.stat().st_size == 0:
            raise RenderError(f"{out.preset} {out.name}: ffmpeg wrote nothing",
                              code="render-check", command=job.argv)
        return Made(path, _facts(out, path, job.timeout, demuxer, picture, mono_pairs))
    return finish


def _package(out: OutputPlan, files: dict[str, Path], folder: Path, gop_seconds: float,
             timeout: float) -> tuple[Path, dict[str, Any], Extras]:
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


def _finish_ladder(job: Finishing, out: OutputPlan) -> Made:
    files = {r.name: job.targets[rung_target(out, r.name)] for r in out.rungs}
    path, facts, extras = _package(out, files, job.scratch / f"{out.spec_hash[:24]}-hls",
                                   job.plan.branch_of(out).gop_seconds, job.timeout)
    return Made(path, facts, extras)


def _sprite(out: OutputPlan, scratch: Path, duration: float) -> tuple[Path, dict[str, Any], Extras]:
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


def _finish_sprite(job: Finishing, out: OutputPlan) -> Made:
    info = job.plan.info
    path, facts, extras = _sprite(out, job.scratch, info.video.duration if info.video else info.duration)
    return Made(path, facts, extras)


def _finish_webvtt(job: Finishing, out: OutputPlan) -> Made:
    path = job.targets[out.key]
    path.write_text(subtitles.webvtt(list(job.plan.cues), job.plan.language), encoding="utf-8")
    return Made(path, {"cues": len(job.plan.cues)})


# --- the registries ------------------------------------------------------------------------

@dataclass(frozen=True)
class ClipStep:
    """How one clip kind is made and finished. Which fields apply follows the kind's ``feed``:
    ``graph`` kinds have ``picture`` and ``options``, ``seek`` kinds a ``still``, ``text`` kinds
    only ``finish``."""

    finish: Finish
    picture: Callable[[Stream, OutputPlan, BranchPlan], Stream] | None = None
    """The last filters on the picture its branch hands over (fields, rate, pixel format)."""
    options: Callable[[OutputPlan, float, str | None], dict[str, object]] | None = None
    """Encoder and muxer options of its file, given the GOP in seconds and (ladders) the rung."""
    sound: Callable[[Stream, OutputPlan], list[Stream]] = _stereo
    """Its audio streams from the branch's programme stereo."""
    silence_if_mute: bool = False
    """Carry audio tracks, silent, even for a clip without sound."""
    still: Still | None = None
    files: str | None = None
    """What ffmpeg writes after the spec hash when it is not one ``.<extension>`` file."""


CLIP_STEPS: Mapping[str, ClipStep] = {
    "mp4": ClipStep(_read_back("mov", "full"), _progressive, _mp4_options),
    "hls": ClipStep(_finish_ladder, _progressive, _hls_rung_options),
    "xdcam": ClipStep(_read_back("mxf", "full", mono_pairs=True), _interlaced, _xdcam_options,
                      sound=_mono_tracks, silence_if_mute=True),
    "poster": ClipStep(_read_back("image2", "size"), still=Still(_poster_seek, _poster)),
    "sprite": ClipStep(_finish_sprite, still=Still(_sprite_seek, _sprite_sheets), files="-sheet-%03d.jpg"),
    "webvtt": ClipStep(_finish_webvtt),
}
"""Clip kind name -> its step."""


@dataclass(frozen=True)
class AudioStep:
    """How one audio kind is encoded and read back."""

    options: Mapping[str, object]
    """Encoder and muxer options (48 kHz stereo is added for every kind)."""
    bitrate: bool
    """Takes the spec's ``bitrate`` (lossy formats)."""
    demuxer: str
    """How its file is read back for its facts."""

    def finish(self, job: Finishing, out: AudioPlan) -> Made:
        path = job.targets[out.key]
        return Made(path, _facts(out, path, job.timeout, self.demuxer))


AUDIO_STEPS: Mapping[str, AudioStep] = {
    "bwf": AudioStep({"c:a": "pcm_s24le", "f": "wav", "write_bext": 1, "rf64": "auto"}, False, "wav"),
    "aac": AudioStep({"c:a": "aac", "movflags": "+faststart", "f": "mp4"}, True, "mov"),
    "mp3": AudioStep({"c:a": "libmp3lame", "f": "mp3", "id3v2_version": 3}, True, "mp3"),
}
"""Audio kind name -> its step."""
