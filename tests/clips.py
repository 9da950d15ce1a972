"""Test clips made with ffmpeg's lavfi sources, named for their trouble."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

FFMPEG = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]


def _run(*args: str) -> None:
    subprocess.run([*FFMPEG, *args], check=True, timeout=120)


def picture(size: str, rate: str, seconds: float) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]


def tone(seconds: float, layout: str = "stereo", volume: float = 0.25) -> list[str]:
    return ["-f", "lavfi", "-i",
            f"sine=frequency=440:sample_rate=48000:duration={seconds},volume={volume},"
            f"aformat=channel_layouts={layout}"]


def phone_clip(path: Path, seconds: float = 3.0, size: str = "1920x1080",
               rate: str = "30000/1001") -> Path:
    """``phone.mp4``: H.264 1080p29.97 with AAC stereo and the phone's GPS position, like a
    phone's camera."""
    _run(*picture(size, rate, seconds), *tone(seconds), "-c:v", "libx264", "-preset", "ultrafast",
         "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
         "-metadata", "location=+19.8070+105.7760/", "-metadata", "make=Apple",
         "-metadata", "model=iPhone 13", str(path))
    return path


def set_rotation(path: Path, degrees: int) -> Path:
    """Write a display rotation into the first track header (what phones do when held upright)."""
    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd")
    version = data[at + 4]
    matrix = at + 4 + 4 + (32 if version == 1 else 20) + 8 + 8
    one, minus, w = 0x00010000, 0xFFFF0000, 0x40000000
    values = {90: (0, one, 0, minus, 0, 0), 180: (minus, 0, 0, 0, minus, 0),
              270: (0, minus, 0, one, 0, 0)}[degrees]
    a, b, u, c, d, v = values
    data[matrix:matrix + 36] = struct.pack(">9I", a, b, u, c, d, v, 0, 0, w)
    path.write_bytes(bytes(data))
    return path


def vertical_60fps(path: Path, seconds: float = 2.0) -> Path:
    """``vertical-60fps.mov``: stored 1280x720 at 60 fps, rotated 90 degrees for display."""
    _run(*picture("1280x720", "60", seconds), *tone(seconds), "-c:v", "libx264", "-preset",
         "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", "-f", "mov", str(path))
    return set_rotation(path, 90)


def interlaced_mxf(path: Path, seconds: float = 2.0) -> Path:
    """``interlaced-1080i50.mxf``: MPEG-2 4:2:2 1080i50 top field first, PCM, like XDCAM."""
    _run(*picture("1920x1080", "50", seconds), *tone(seconds, "mono"),
         "-vf", "tinterlace=mode=interleave_top,setfield=tff,format=yuv422p",
         "-c:v", "mpeg2video", "-b:v", "30M", "-flags", "+ildct+ilme", "-g", "12",
         "-c:a", "pcm_s24le", "-ar", "48000", "-shortest", "-f", "mxf", str(path))
    return path


def hevc_10bit(path: Path, seconds: float = 2.0) -> Path:
    """``hevc-10bit.mp4``: HEVC Main 10 (iPhone default), AAC."""
    _run(*picture("1280x720", "25", seconds), *tone(seconds), "-c:v", "libx265", "-preset",
         "ultrafast", "-x265-params", "log-level=error", "-pix_fmt", "yuv420p10le", "-tag:v", "hvc1",
         "-c:a", "aac", "-shortest", str(path))
    return path


def no_audio(path: Path, seconds: float = 2.0) -> Path:
    """``no-audio.mp4``: picture only."""
    _run(*picture("1280x720", "25", seconds), "-c:v", "libx264", "-preset", "ultrafast",
         "-pix_fmt", "yuv420p", str(path))
    return path


def surround(path: Path, seconds: float = 2.0) -> Path:
    """``surround-5.1.mp4``: AAC 5.1."""
    _run(*picture("1280x720", "25", seconds), *tone(seconds, "5.1"), "-c:v", "libx264", "-preset",
         "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path))
    return path


def variable_rate(path: Path, seconds: float = 3.0) -> Path:
    """``vfr.mp4``: frame intervals that wander between 1/30 and 1/20 s, like a phone in low light."""
    _run(*picture("1280x720", "30", seconds), *tone(seconds),
         "-vf", "setpts='N/30/TB+0.02*floor(N/7)/TB'", "-fps_mode", "vfr",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
         "-shortest", str(path))
    return path


def truncated_clip(path: Path) -> Path:
    """``truncated.mp4``: the first 60 % of a clip whose index sits at the end."""
    whole = path.with_name("whole-" + path.name)
    _run(*picture("1280x720", "25", 2.0), "-c:v", "libx264", "-preset", "ultrafast",
         "-pix_fmt", "yuv420p", str(whole))
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])
    whole.unlink()
    return path


def _alias_record(path: str) -> bytes:
    """A Mac alias record (``alis`` data reference) naming ``path``, one folder level: a file next
    to the movie. ffmpeg's mov demuxer opens such a file only with ``-enable_drefs 1``."""
    name = path.rsplit("/", 1)[-1].encode()
    body = (bytes(10) + b"\x00" + bytes(27) + bytes(12) + bytes([len(name)]) + name.ljust(63, b"\x00")
            + bytes(16) + struct.pack(">HH", 1, 1) + bytes(16))
    raw = path.encode() + (b"\x00" if len(path.encode()) % 2 else b"")
    body += struct.pack(">HH", 2, len(raw)) + raw + struct.pack(">hH", -1, 0)
    return struct.pack(">I4sI", 12 + len(body), b"alis", 0) + body


def external_reference_mov(path: Path) -> Path:
    """``external-reference.mov``: a red picture whose samples live in ANOTHER file next to it
    (``external.mov``), named by an alias data reference; its own samples are black."""
    external = path.with_name("external.mov")
    _run("-f", "lavfi", "-i", "color=c=red:size=32x32:rate=25:duration=0.2", "-c:v", "rawvideo",
         "-pix_fmt", "rgb24", "-f", "mov", str(external))
    data = bytearray(external.read_bytes())
    at = data.find(b"dref") - 4
    entry = _alias_record("/elsewhere/" + external.name)
    dref = struct.pack(">I4sII", 16 + len(entry), b"dref", 0, 1) + entry
    grow = len(dref) - struct.unpack(">I", data[at:at + 4])[0]
    data[at:at + len(dref) - grow] = dref
    for kind in (b"dinf", b"minf", b"mdia", b"trak", b"moov"):     # the boxes around it grow too
        box = data.find(kind) - 4
        data[box:box + 4] = struct.pack(">I", struct.unpack(">I", data[box:box + 4])[0] + grow)
    mdat = data.find(b"mdat") - 4       # ffmpeg writes the samples first and the index last
    size = struct.unpack(">I", data[mdat:mdat + 4])[0]
    data[mdat + 8:mdat + size] = bytes(size - 8)
    path.write_bytes(bytes(data))
    return path
