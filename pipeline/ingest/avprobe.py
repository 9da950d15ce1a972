"""Probe clips and audio with ffprobe: streams, sizes, rotation, rates, fields, channels.

Only allow-listed containers and codecs pass; the demuxer is the one the content sniffing chose
(never ffprobe's guess), the input is a local file (``-protocol_whitelist file``), and caps on
size, duration and resolution apply. Interlacing that the container does not state is measured
with ffmpeg's ``idet`` filter.
"""

from __future__ import annotations

import os
import re
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from pipeline.errors import LimitExceeded, ProbeError, UnsupportedMedia
from pipeline.ingest.info import AudioStream, AVInfo, FieldOrder, VideoStream
from pipeline.ingest.limits import AVLimits
from pipeline.ingest.sniff import Sniffed
from pipeline.render.av.runner import binary, ffprobe_json, input_args, run_capture

DEMUXERS = {"mp4": "mov", "mov": "mov", "matroska": "matroska", "mxf": "mxf", "mpegts": "mpegts",
            "wav": "wav", "mp3": "mp3", "flac": "flac"}
"""Sniffed container -> the only ffmpeg demuxer allowed to open it."""

VIDEO_CODECS = {"h264", "hevc", "prores", "dnxhd", "mpeg2video", "vp9", "av1"}
AUDIO_CODECS = {"aac", "mp3", "ac3", "eac3", "flac", "opus", "alac", "mp2",
                "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be", "pcm_s32le", "pcm_f32le"}

def _fraction(text: str | None) -> Fraction:
    try:
        value = Fraction(text or "0/1")
    except (ValueError, ZeroDivisionError):
        return Fraction(0)
    return value


def _rotation(stream: dict[str, Any]) -> int:
    angle = 0.0
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            angle = float(side["rotation"])
    if not angle and "rotate" in (stream.get("tags") or {}):
        angle = -float(stream["tags"]["rotate"])
    return round(-angle) % 360  # ffprobe's displaymatrix angle is counter-clockwise


def _bit_depth(stream: dict[str, Any]) -> int:
    raw = stream.get("bits_per_raw_sample")
    if raw and str(raw).isdigit():
        return int(raw)
    match = re.search(r"p(\d+)(le|be)$", stream.get("pix_fmt", ""))
    return int(match.group(1)) if match else 8


_IDET = re.compile(r"Multi frame detection:\s*TFF:\s*(\d+)\s*BFF:\s*(\d+)\s*Progressive:\s*(\d+)")


def idet_argv(path: Path, demuxer: str) -> list[str]:
    return [binary("ffmpeg"), "-hide_banner", "-nostdin", "-loglevel", "info",
            *input_args(demuxer, path), "-map", "0:v:0", "-an", "-sn", "-dn", "-frames:v", "250",
            "-vf", "idet", "-f", "null", "-"]


def detect_fields(path: Path, demuxer: str, timeout: float) -> FieldOrder:
    """Measure interlacing with ``idet`` over the first 250 frames."""
    match = _IDET.search(run_capture(idet_argv(path, demuxer), timeout))
    if not match:
        return "progressive"
    tff, bff, progressive = map(int, match.groups())
    if max(tff, bff) <= progressive:
        return "progressive"
    return "tt" if tff >= bff else "bb"


def _field_order(stream: dict[str, Any], path: Path, demuxer: str, limits: AVLimits) -> FieldOrder:
    stated = stream.get("field_order", "")
    if stated == "progressive":
        return "progressive"
    if stated in ("tt", "tb"):
        return "tt"
    if stated in ("bb", "bt"):
        return "bb"
    return detect_fields(path, demuxer, limits.probe_timeout)


def _video(stream: dict[str, Any], path: Path, demuxer: str, limits: AVLimits,
           container_duration: float) -> VideoStream:
    codec = stream.get("codec_name", "?")
    if codec not in VIDEO_CODECS:
        raise UnsupportedMedia(f"the video codec {codec!r} is not accepted (accepted: H.264, HEVC,"
                               " ProRes, DNxHD, MPEG-2/XDCAM, VP9, AV1)", code="codec")
    coded_w, coded_h = int(stream.get("width") or 0), int(stream.get("height") or 0)
    if coded_w <= 0 or coded_h <= 0:
        raise ProbeError("the video stream has no picture size: the file is damaged", code="corrupt")
    if coded_w > limits.max_width or coded_h > limits.max_height:
        raise UnsupportedMedia(f"the video is too large ({coded_w}x{coded_h}; up to"
                               f" {limits.max_width}x{limits.max_height} is accepted)", code="too-large")
    sar_text = stream.get("sample_aspect_ratio") or "1:1"
    num, _, den = sar_text.partition(":")
    sar = (int(num), int(den)) if num.isdigit() and den.isdigit() and int(num) and int(den) else (1, 1)
    rotation = _rotation(stream)
    width = round(coded_w * sar[0] / sar[1] / 2) * 2
    height = coded_h
    if rotation in (90, 270):
        width, height = height, width
    fps = _fraction(stream.get("r_frame_rate"))
    avg = _fraction(stream.get("avg_frame_rate")) or fps
    if fps <= 0 or fps > 240:
        fps = avg
    if fps <= 0:
        raise ProbeError("the video has no frame rate: the file is damaged", code="corrupt")
    vfr = avg > 0 and abs(float(fps) - float(avg)) / float(fps) > 0.01
    return VideoStream(codec=codec, profile=str(stream.get("profile", "")),
                       pix_fmt=str(stream.get("pix_fmt", "")), bit_depth=_bit_depth(stream),
                       width=width, height=height, coded_width=coded_w, coded_height=coded_h,
                       rotation=rotation, sar=sar, fps=fps, avg_fps=avg, vfr=vfr,
                       field_order=_field_order(stream, path, demuxer, limits),
                       duration=float(stream.get("duration") or 0) or container_duration)


def _audio(stream: dict[str, Any]) -> AudioStream:
    codec = stream.get("codec_name", "?")
    if codec not in AUDIO_CODECS:
        raise UnsupportedMedia(f"the audio codec {codec!r} is not accepted (accepted: AAC, PCM, MP3,"
                               " AC-3, E-AC-3, FLAC, Opus, ALAC, MP2)", code="codec")
    channels = int(stream.get("channels") or 0)
    if channels <= 0:
        raise ProbeError("the audio stream has no channels: the file is damaged", code="corrupt")
    return AudioStream(codec=codec, channels=channels,
                       layout=str(stream.get("channel_layout") or f"{channels}c"),
                       sample_rate=int(stream.get("sample_rate") or 0))


_BOX_READ = 64 * 1024


def boxes_complete(path: Path, max_boxes: int = AVLimits.max_boxes,
                   max_seconds: float = AVLimits.box_walk_seconds) -> bool:
    """True when the top-level boxes of an MP4/MOV file add up to its size (a cut upload does not).

    Headers are read 64 KiB at a time (a big box's body is skipped with one seek), and the walk
    stops with a reason after ``max_boxes`` boxes or ``max_seconds``: 80 MB of 8-byte boxes, one
    seek and read each, kept a worker busy for half a minute.
    """
    deadline = time.monotonic() + max_seconds
    with open(path, "rb", buffering=0) as handle:
        size = os.fstat(handle.fileno()).st_size
        position = count = 0
        chunk, chunk_start = b"", 0
        while position + 8 <= size:
            count += 1
            if count > max_boxes:
                raise UnsupportedMedia(f"the file is cut into more than {max_boxes:,} top-level parts"
                                       " (MP4 boxes); a clip has a few, or two per fragment: export"
                                       " it again", code="too-many-boxes")
            if count % 4096 == 0 and time.monotonic() > deadline:
                raise LimitExceeded(f"reading the file's structure took more than {max_seconds:g} s"
                                    " (a slow disk?); the asset can be tried again", code="probe-timeout")
            at = position - chunk_start
            if at < 0 or at + 16 > len(chunk):
                handle.seek(position)
                chunk, chunk_start, at = handle.read(_BOX_READ), position, 0
            length = int.from_bytes(chunk[at:at + 4], "big")
            if length == 1 and len(chunk) - at >= 16:
                length = int.from_bytes(chunk[at + 8:at + 16], "big")
            elif length == 0:       # "to the end of the file"
                return True
            if length < 8:
                return False
            position += length
    return position == size


def probe_av(path: Path, sniffed: Sniffed, limits: AVLimits | None = None) -> AVInfo:
    """Describe a clip or an audio file; refuse what we do not accept, with a reason."""
    limits = limits or AVLimits()
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise UnsupportedMedia(f"the file is too large ({size / 1e9:.1f} GB; up to"
                               f" {limits.max_bytes / 1e9:.0f} GB is accepted)", code="too-large")
    demuxer = DEMUXERS.get(sniffed.format)
    if demuxer is None:
        raise UnsupportedMedia(f"{sniffed.format} files are not accepted", code="container")
    if demuxer == "mov" and not boxes_complete(path, limits.max_boxes, limits.box_walk_seconds):
        raise ProbeError("the file is truncated (it ends before its last part); upload it again",
                         code="truncated")
    data = ffprobe_json(path, demuxer, timeout=limits.probe_timeout)
    streams = data.get("streams", [])
    videos = [s for s in streams if s.get("codec_type") == "video"
              and not (s.get("disposition") or {}).get("attached_pic")]
    audios = [s for s in streams if s.get("codec_type") == "audio"]
    if not videos and not audios:
        raise ProbeError("the file holds no video or audio stream", code="no-streams")
    duration = float((data.get("format") or {}).get("duration") or 0) or max(
        (float(s.get("duration") or 0) for s in streams), default=0.0)
    if duration <= 0:
        raise ProbeError("the file has no duration: it is empty or truncated", code="truncated")
    if duration > limits.max_duration:
        raise UnsupportedMedia(f"the clip is too long ({duration / 60:.0f} min; up to"
                               f" {limits.max_duration / 60:.0f} min is accepted)", code="too-long")
    video = _video(videos[0], path, demuxer, limits, duration) if videos else None
    audio = _audio(audios[0]) if audios else None
    kind: Literal["video", "audio"] = "video" if video else "audio"
    mime = sniffed.mime if kind == "video" or sniffed.kind == "audio" else "audio/mp4"
    return AVInfo(kind=kind, container=sniffed.format, demuxer=demuxer, mime=mime, bytes=size,
                  duration=duration, video=video, audio=audio)
