"""HLS packaging from fragmented MP4: segments, media playlists, I-frame playlists, master.

ffmpeg writes each ladder rung as ONE fragmented MP4 with a fragment per GOP (fixed 2 s GOPs).
This module cuts it into an init segment and 6 s media segments (whole fragments, so every
segment starts with an IDR frame), and writes the playlists itself, including the I-frame
playlists and the ``EXT-X-I-FRAME-STREAM-INF`` tags that Apple's HLS authoring spec requires and
ffmpeg cannot write. Pure byte work: no ffmpeg here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import RenderError


@dataclass(frozen=True)
class Box:
    type: str
    start: int
    size: int
    header: int

    @property
    def end(self) -> int:
        return self.start + self.size

    @property
    def body(self) -> int:
        return self.start + self.header


def boxes(data: bytes, start: int = 0, end: int | None = None) -> list[Box]:
    """The boxes laid end to end in ``data[start:end]``."""
    end = len(data) if end is None else end
    out = []
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        header = 8
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8:pos + 16])[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise RenderError("the packager met a damaged MP4 box", code="hls")
        out.append(Box(kind.decode("latin-1"), pos, size, header))
        pos += size
    return out


def child(data: bytes, box: Box, kind: str, skip: int = 0) -> Box | None:
    return next((b for b in boxes(data, box.body + skip, box.end) if b.type == kind), None)


def path_to(data: bytes, box: Box, *kinds: str) -> Box | None:
    current: Box | None = box
    for kind in kinds:
        if current is None:
            return None
        current = child(data, current, kind)
    return current


@dataclass(frozen=True)
class Track:
    id: int
    kind: str
    """``vide`` or ``soun``."""
    timescale: int
    codec: str
    """RFC 6381 codec string, e.g. ``avc1.640028`` or ``mp4a.40.2``."""


@dataclass(frozen=True)
class Fragment:
    start: int
    end: int
    """Byte range of moof + mdat in the file."""
    time: float
    duration: float
    iframe_end: int
    """End of the fragment's first video sample (the IDR frame): moof start to here is all a
    player needs to show that frame."""


def _tracks(data: bytes, moov: Box) -> dict[int, Track]:
    tracks = {}
    for trak in (b for b in boxes(data, moov.body, moov.end) if b.type == "trak"):
        tkhd = child(data, trak, "tkhd")
        mdhd = path_to(data, trak, "mdia", "mdhd")
        hdlr = path_to(data, trak, "mdia", "hdlr")
        if tkhd is None or mdhd is None or hdlr is None:
            continue
        version = data[tkhd.body]
        track_id = struct.unpack(">I", data[tkhd.body + (20 if version == 1 else 12):][:4])[0]
        mversion = data[mdhd.body]
        timescale = struct.unpack(">I", data[mdhd.body + (20 if mversion == 1 else 12):][:4])[0]
        kind = data[hdlr.body + 8:hdlr.body + 12].decode("latin-1")
        codec = "mp4a.40.2"
        stsd = path_to(data, trak, "mdia", "minf", "stbl", "stsd")
        if kind == "vide" and stsd is not None:
            entry = boxes(data, stsd.body + 8, stsd.end)[0]
            avcc = child(data, entry, "avcC", skip=78)
            if avcc is not None:
                profile, compat, level = data[avcc.body + 1:avcc.body + 4]
                codec = f"avc1.{profile:02x}{compat:02x}{level:02x}"
            else:
                codec = entry.type
        tracks[track_id] = Track(track_id, kind, timescale, codec)
    return tracks


def _video_run(data: bytes, moof: Box, video: Track) -> tuple[float, float, int]:
    """(start seconds, duration seconds, end byte of the first sample) of the video in a moof."""
    for traf in (b for b in boxes(data, moof.body, moof.end) if b.type == "traf"):
        tfhd = child(data, traf, "tfhd")
        if tfhd is None:
            continue
        flags = int.from_bytes(data[tfhd.body + 1:tfhd.body + 4], "big")
        track_id = struct.unpack(">I", data[tfhd.body + 4:tfhd.body + 8])[0]
        if track_id != video.id:
            continue
        pos = tfhd.body + 8
        default_duration = default_size = 0
        if flags & 0x01:
            pos += 8
        if flags & 0x02:
            pos += 4
        if flags & 0x08:
            default_duration = struct.unpack(">I", data[pos:pos + 4])[0]
            pos += 4
        if flags & 0x10:
            default_size = struct.unpack(">I", data[pos:pos + 4])[0]
        tfdt = child(data, traf, "tfdt")
        base = 0
        if tfdt is not None:
            base = (struct.unpack(">Q", data[tfdt.body + 4:tfdt.body + 12])[0] if data[tfdt.body] == 1
                    else struct.unpack(">I", data[tfdt.body + 4:tfdt.body + 8])[0])
        trun = child(data, traf, "trun")
        if trun is None:
            continue
        tflags = int.from_bytes(data[trun.body + 1:trun.body + 4], "big")
        count = struct.unpack(">I", data[trun.body + 4:trun.body + 8])[0]
        pos = trun.body + 8
        data_offset = 0
        if tflags & 0x001:
            data_offset = struct.unpack(">i", data[pos:pos + 4])[0]
            pos += 4
        if tflags & 0x004:
            pos += 4
        total = 0
        first_size = default_size
        for index in range(count):
            duration, size = default_duration, default_size
            if tflags & 0x100:
                duration = struct.unpack(">I", data[pos:pos + 4])[0]
                pos += 4
            if tflags & 0x200:
                size = struct.unpack(">I", data[pos:pos + 4])[0]
                pos += 4
            if tflags & 0x400:
                pos += 4
            if tflags & 0x800:
                pos += 4
            total += duration
            if index == 0:
                first_size = size
        return base / video.timescale, total / video.timescale, moof.start + data_offset + first_size
    raise RenderError("the packager found no video in a fragment", code="hls")


@dataclass(frozen=True)
class Rung:
    """One rung of the ladder, read from its fragmented MP4."""

    name: str
    width: int
    height: int
    fps: float
    data: bytes
    init_end: int
    video: Track
    codecs: str
    fragments: tuple[Fragment, ...]


def read_rung(name: str, path: Path, width: int, height: int, fps: float) -> Rung:
    """Read one rung's fragmented MP4 (written with ``negative_cts_offsets``, so the first
    picture is at time zero like the audio: a fragmented file has no edit list to fix that)."""
    data = path.read_bytes()
    top = boxes(data)
    moov = next((b for b in top if b.type == "moov"), None)
    if moov is None:
        raise RenderError(f"HLS rung {name}: no moov box", code="hls")
    tracks = _tracks(data, moov)
    video = next((t for t in tracks.values() if t.kind == "vide"), None)
    if video is None:
        raise RenderError(f"HLS rung {name}: no video track", code="hls")
    fragments = []
    for index, box in enumerate(top):
        if box.type != "moof":
            continue
        mdat = top[index + 1] if index + 1 < len(top) else None
        if mdat is None or mdat.type != "mdat":
            raise RenderError(f"HLS rung {name}: a fragment has no data", code="hls")
        start, duration, iframe_end = _video_run(data, box, video)
        fragments.append(Fragment(box.start, mdat.end, start, duration, iframe_end))
    if not fragments:
        raise RenderError(f"HLS rung {name}: the file is not fragmented", code="hls")
    codecs = ",".join(dict.fromkeys([video.codec] + [t.codec for t in tracks.values() if t.kind == "soun"]))
    return Rung(name, width, height, fps, data, moov.end, video, codecs, tuple(fragments))


@dataclass(frozen=True)
class Written:
    """A file the packager wrote, relative to the HLS folder."""

    name: str
    path: Path
    mime: str


M3U8 = "application/vnd.apple.mpegurl"


def package(rungs: list[Rung], folder: Path, per_segment: int) -> list[Written]:
    """Write init segments, media segments of ``per_segment`` fragments (GOPs) each and every
    playlist into ``folder``; the master last."""
    written: list[Written] = []
    variants = []
    for rung in rungs:
        base = folder / rung.name
        base.mkdir(parents=True, exist_ok=True)
        (base / "init.mp4").write_bytes(rung.data[:rung.init_end])
        written.append(Written(f"{rung.name}/init.mp4", base / "init.mp4", "video/mp4"))
        segments = [list(rung.fragments[i:i + per_segment])
                    for i in range(0, len(rung.fragments), per_segment)]
        media = ["#EXTM3U", "#EXT-X-VERSION:7", "", "#EXT-X-PLAYLIST-TYPE:VOD",
                 "#EXT-X-INDEPENDENT-SEGMENTS", '#EXT-X-MAP:URI="init.mp4"']
        iframes = ["#EXTM3U", "#EXT-X-VERSION:7", "", "#EXT-X-PLAYLIST-TYPE:VOD",
                   "#EXT-X-I-FRAMES-ONLY", "#EXT-X-INDEPENDENT-SEGMENTS", '#EXT-X-MAP:URI="init.mp4"']
        peak = 0.0
        iframe_peak = 0.0
        total_bytes = 0
        total_iframe_bytes = 0
        longest = 0.0
        for index, group in enumerate(segments):
            name = f"seg_{index:04d}.m4s"
            chunk = rung.data[group[0].start:group[-1].end]
            (base / name).write_bytes(chunk)
            written.append(Written(f"{rung.name}/{name}", base / name, "video/iso.segment"))
            duration = sum(f.duration for f in group)
            longest = max(longest, duration)
            media += [f"#EXTINF:{duration:.3f},", name]
            peak = max(peak, len(chunk) * 8 / max(duration, 0.001))
            total_bytes += len(chunk)
            for fragment in group:
                offset = fragment.start - group[0].start
                length = fragment.iframe_end - fragment.start
                iframes += [f"#EXTINF:{fragment.duration:.3f},", f"#EXT-X-BYTERANGE:{length}@{offset}", name]
                iframe_peak = max(iframe_peak, length * 8 / max(fragment.duration, 0.001))
                total_iframe_bytes += length
        target = max(1, round(longest))   # RFC 8216: EXTINF rounded to the nearest integer <= target
        media[2] = iframes[2] = f"#EXT-X-TARGETDURATION:{target}"
        media.append("#EXT-X-ENDLIST")
        iframes.append("#EXT-X-ENDLIST")
        for name, lines in (("index.m3u8", media), ("iframes.m3u8", iframes)):
            (base / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
            written.append(Written(f"{rung.name}/{name}", base / name, M3U8))
        seconds = sum(f.duration for f in rung.fragments)
        variants.append((rung, round(peak), round(total_bytes * 8 / max(seconds, 0.001)),
                         round(iframe_peak), round(total_iframe_bytes * 8 / max(seconds, 0.001))))
    master = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS", ""]
    for rung, peak, average, _ipeak, _iaverage in variants:
        master += [f"#EXT-X-STREAM-INF:BANDWIDTH={peak},AVERAGE-BANDWIDTH={average},"
                   f'CODECS="{rung.codecs}",RESOLUTION={rung.width}x{rung.height},'
                   f"FRAME-RATE={rung.fps:.3f}", f"{rung.name}/index.m3u8"]
    master.append("")
    for rung, _peak, _average, ipeak, iaverage in variants:
        master.append(f"#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH={ipeak},AVERAGE-BANDWIDTH={iaverage},"
                      f'CODECS="{rung.video.codec}",RESOLUTION={rung.width}x{rung.height},'
                      f'URI="{rung.name}/iframes.m3u8"')
    (folder / "master.m3u8").write_text("\n".join(master) + "\n", encoding="utf-8")
    written.append(Written("master.m3u8", folder / "master.m3u8", M3U8))
    return written
