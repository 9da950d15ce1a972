"""``storymedia run`` on hostile photos: each ends within two minutes with a reason or a rendition, and no
process of the run holds more than 1 GB."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipeline.model.manifest import validate
from tests.conftest import run_cli
from tests.e2e.test_run import manifest_of
from tests.fixtures import float_tiff, photo, scan_bomb_jpeg, sixteen_bit_png

pytestmark = pytest.mark.e2e

STORY = """[story]
id = "hostile-photos-2023"
title = "Ảnh khó: bom quét, PNG 16-bit"
byline = "Đình Hà"
published = 2023-09-12T21:15:00+07:00
source = "Phòng chống tham nhũng"
copyright = "Thanh Hoa Radio and Television"
"""


def test_hostile_photos_end_in_time_with_a_reason_or_a_rendition(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    scan_bomb_jpeg(media / "scan-bomb.jpg", scans=20000)   # 1.4 MB; decoded for minutes before
    sixteen_bit_png(media / "grey16.png")                   # 230 kB of 100 MP 16-bit grey: 1.3 GB before
    float_tiff(media / "float.tif")                         # 400 kB, 100 MP float in one strip: 1.7 GB before
    photo((2400, 1600), 1).save(media / "good.jpg", quality=90)
    files = ["scan-bomb.jpg", "grey16.png", "float.tif", "good.jpg"]
    story = tmp_path / "story.toml"
    story.write_text(STORY + "".join(f'\n[[assets]]\nfile = "media/{name}"\ncaption = "Ảnh {name}"\n'
                                     for name in files), encoding="utf-8")
    out = tmp_path / "out"
    started = time.monotonic()
    result = run_cli("run", str(story), "--out", str(out), timeout=120)
    elapsed = time.monotonic() - started
    text = result.stdout + result.stderr
    assert result.returncode == 2, text
    assert "Traceback" not in text
    assert elapsed < 120
    doc = manifest_of(out, "hostile-photos-2023")
    validate(doc)
    status = {entry["filename"]: entry for entry in doc["assets"]}
    assert status["good.jpg"]["status"] == "done" and len(status["good.jpg"]["renditions"]) == 13
    bomb = status["scan-bomb.jpg"]
    assert bomb["status"] == "failed" and bomb["error"]["code"] == "too-many-scans", bomb
    assert "more than 100 scans" in bomb["error"]["reason"] and "more than 100 scans" in text
    assert bomb["error"]["retryable"] is False
    tiff = status["float.tif"]
    assert tiff["status"] == "failed" and tiff["error"]["code"] == "too-much-memory", tiff
    assert "would need about 763 MB of memory" in tiff["error"]["reason"]
    grey = status["grey16.png"]
    assert grey["status"] == "done" and len(grey["renditions"]) == 13, grey
    for entry in doc["assets"]:
        for rendition in entry["renditions"]:
            assert (out / "public" / rendition["key"]).stat().st_size == rendition["bytes"]
    assert result.peak_mb < 1024, f"peak {result.peak_mb:.0f} MB"


def test_the_stations_render_time_limit_reaches_the_render_process(tmp_path: Path) -> None:
    """``image_time_limit`` in limits.toml stops a photo's render in the embedded run (the failure
    is retryable: it is not the producer's fault), and the rest of the story goes on."""
    import shutil

    from tests.conftest import PRESETS

    presets = tmp_path / "presets"
    shutil.copytree(PRESETS, presets)
    (presets / "limits.toml").write_text(
        "[image]\nimage_time_limit = 4\nmax_jpeg_scans = 1000000\nmax_jpeg_segments = 1000000\n",
        encoding="utf-8")
    media = tmp_path / "media"
    media.mkdir()
    scan_bomb_jpeg(media / "slow.jpg", scans=3000)          # accepted here; 35 s to decode
    photo((1200, 800), 1).save(media / "good.jpg", quality=90)   # well inside the limit on a busy machine
    story = tmp_path / "story.toml"
    story.write_text(STORY + "".join(f'\n[[assets]]\nfile = "media/{name}"\ncaption = "Ảnh"\n'
                                     for name in ("slow.jpg", "good.jpg")), encoding="utf-8")
    out = tmp_path / "out"
    started = time.monotonic()
    result = run_cli("run", str(story), "--out", str(out), "--presets", str(presets), timeout=120)
    assert time.monotonic() - started < 30
    assert result.returncode == 2, result.stdout + result.stderr
    status = {entry["filename"]: entry for entry in manifest_of(out, "hostile-photos-2023")["assets"]}
    assert status["good.jpg"]["status"] == "done"
    slow = status["slow.jpg"]
    assert slow["status"] == "failed" and slow["error"]["code"] == "time-limit", slow
    assert slow["error"]["retryable"] is True
    assert "longer than the 4 s limit" in slow["error"]["reason"]
