"""The MP4 box walk that finds cut uploads: right on real layouts, bounded on hostile ones."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest

from pipeline.errors import LimitExceeded, UnsupportedMedia
from pipeline.ingest.avprobe import boxes_complete, probe_av
from pipeline.ingest.limits import AVLimits
from pipeline.ingest.sniff import sniff


def box(kind: bytes, size: int) -> bytes:
    return struct.pack(">I", size) + kind + b"\x00" * (size - 8)


def fragmented(fragments: int) -> bytes:
    """ftyp, moov, then a moof + mdat pair per fragment: how fragmented MP4 is laid out."""
    return box(b"ftyp", 24) + box(b"moov", 400) + (box(b"moof", 100) + box(b"mdat", 900)) * fragments


def test_whole_and_cut_files(tmp_path: Path) -> None:
    whole = tmp_path / "whole.mp4"
    whole.write_bytes(fragmented(20_000))         # 40,002 boxes: well inside the cap
    assert boxes_complete(whole)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[:-300])
    assert not boxes_complete(cut)
    large = tmp_path / "large.mp4"                # a 64-bit size, and a box read past the 64 KiB chunk
    large.write_bytes(box(b"ftyp", 24) + struct.pack(">I4sQ", 1, b"mdat", 200_016) + b"\x00" * 200_000
                      + box(b"free", 8))
    assert boxes_complete(large)


def test_millions_of_tiny_boxes_are_refused_at_once(tmp_path: Path) -> None:
    """80 MB of 8-byte boxes took 25 s (5.5 s here) to walk, one seek and read per box."""
    tiny = tmp_path / "tiny-boxes.mp4"
    tiny.write_bytes(box(b"ftyp", 24) + box(b"free", 8) * 10_000_000)
    started = time.monotonic()
    with pytest.raises(UnsupportedMedia, match="more than 100,000 top-level parts") as caught:
        boxes_complete(tiny)
    assert caught.value.code == "too-many-boxes"
    assert time.monotonic() - started < 2


def test_the_walk_has_a_time_limit(tmp_path: Path) -> None:
    tiny = tmp_path / "tiny-boxes.mp4"
    tiny.write_bytes(box(b"free", 8) * 50_000)
    with pytest.raises(LimitExceeded, match="took more than 0 s") as caught:
        boxes_complete(tiny, max_boxes=1_000_000, max_seconds=0)
    assert caught.value.retryable


def test_probe_refuses_a_file_of_tiny_boxes_with_a_reason(tmp_path: Path) -> None:
    tiny = tmp_path / "tiny-boxes.mp4"
    tiny.write_bytes(box(b"ftyp", 32)[:8] + b"isom\x00\x00\x02\x00isomiso2avc1mp41" + box(b"free", 8) * 20)
    with pytest.raises(UnsupportedMedia, match="top-level parts"):
        probe_av(tiny, sniff(tiny), AVLimits(max_boxes=10))
