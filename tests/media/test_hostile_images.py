"""Hostile photos cost bounded time and memory: scan bombs and giant decodes are refused at probe, high
bit depths convert a strip at a time, and the decode/render child is killed past its limits."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from pipeline.errors import LimitExceeded, UnsupportedMedia
from pipeline.ingest.limits import Limits
from pipeline.ingest.probe import probe
from pipeline.plan.image import plan_image
from pipeline.render.image.isolated import render_image_isolated, render_processes, run_isolated
from tests.conftest import REPO
from tests.fixtures import float_tiff, photo, scan_bomb_jpeg, sixteen_bit_png, sixteen_bit_value
from tests.media.render_helpers import TEXT

pytestmark = pytest.mark.media

NO_SCAN_LIMIT = {"max_jpeg_scans": 10**6, "max_jpeg_segments": 10**6}


def _plans(path: Path, limits: Limits, presets: dict) -> tuple:
    info = probe(path, limits)
    return info, plan_image(info, "ab" * 32, [presets["web"]], TEXT, (0.5, 0.5), False)


def test_probe_refuses_a_scan_bomb_at_once(tmp_path: Path) -> None:
    bomb = scan_bomb_jpeg(tmp_path / "scan-bomb.jpg", scans=3000)   # 35 s to decode on a 2-core VM
    started = time.monotonic()
    with pytest.raises(UnsupportedMedia) as caught:
        probe(bomb, Limits())
    assert time.monotonic() - started < 1.0
    assert caught.value.code == "too-many-scans"
    assert "more than 100 scans" in caught.value.reason and "save it again" in caught.value.reason
    normal = tmp_path / "progressive.jpg"
    photo((1200, 800), 1).save(normal, "JPEG", quality=90, progressive=True)
    assert probe(normal, Limits()).width == 1200, "a normal progressive JPEG (10 scans) is accepted"


def test_probe_bounds_its_walk_over_marker_segments(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    photo((64, 48), 2).save(buffer, "JPEG")
    data = buffer.getvalue()
    comments = b"\xff\xfe\x00\x03x" * 5000                 # 5,000 one-byte COM segments after SOI
    (tmp_path / "comments.jpg").write_bytes(data[:2] + comments + data[2:])
    with pytest.raises(UnsupportedMedia) as caught:
        probe(tmp_path / "comments.jpg", Limits())
    assert caught.value.code == "too-many-segments"


def test_decoded_bytes_are_capped_as_well_as_pixels(tmp_path: Path) -> None:
    # 100 MP float grey in ONE strip: 400 kB on disk, 4 bytes a pixel decoded plus a strip buffer as
    # large again (800 MB): under the 120 MP pixel cap, over the 512 MiB decode cap.
    one_strip = float_tiff(tmp_path / "float-one-strip.tif", (10000, 10000))
    with pytest.raises(UnsupportedMedia) as caught:
        probe(one_strip, Limits())
    assert caught.value.code == "too-much-memory"
    assert "would need about 763 MB" in caught.value.reason
    assert "32-bit floating-point grey" in caught.value.reason
    # The figure is what decode holds: 16-bit grey is 2 bytes a pixel read, then 1 byte of 8-bit grey
    # beside it, then 1 + 4 bytes while grey becomes RGB: 5 bytes a pixel at the peak.
    grey = sixteen_bit_png(tmp_path / "grey16.png", (1000, 1000))
    assert probe(grey, Limits(max_decoded_bytes=5_000_000)).mode == "I;16"
    with pytest.raises(UnsupportedMedia, match="would need about 5 MB"):
        probe(grey, Limits(max_decoded_bytes=4_999_999))
    rgb = sixteen_bit_png(tmp_path / "rgb16.png", (1000, 1000), channels=3)   # read as 8-bit RGB
    assert probe(rgb, Limits(max_decoded_bytes=4_000_000)).mode == "RGB"
    rgba = sixteen_bit_png(tmp_path / "rgba16.png", (1000, 1000), channels=4)  # resized premultiplied
    with pytest.raises(UnsupportedMedia):
        probe(rgba, Limits(max_decoded_bytes=7_999_999))


_DECODE_PEAK = """
import json, sys
def peak_mb():
    # VmHWM: this program's own peak. ru_maxrss keeps the high-water mark of the process it was
    # forked from (Linux carries it across exec): a test run holding 1 GB read as a 1 GB decode.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no VmHWM")
import numpy as np
from pathlib import Path
from pipeline.ingest.decode import decode
from pipeline.ingest.probe import probe
from pipeline.ingest.limits import Limits
path = Path(sys.argv[1])
info = probe(path, Limits())
img = decode(path, info.format, 1, (info.width, info.height))
column = np.asarray(img.crop((5, 0, 6, img.height)))[:, 0, :]
print(json.dumps({"mode": img.mode, "size": img.size, "grey": bool((column == column[:, :1]).all()),
                  "column": column[:, 0].tolist(),
                  "peak": peak_mb()}))
"""


@pytest.mark.parametrize("maker", ["png", "tiff"])
def test_a_100_mp_high_bit_picture_decodes_exactly_in_bounded_memory(tmp_path: Path, maker: str) -> None:
    """The 230 kB 16-bit PNG of 100 MP took 1.3 GB to decode (whole-picture float copies), the
    float TIFF 1.7 GB; now a strip at a time: the picture, its 8-bit copy and the RGB result. Every
    row keeps its value (16-bit: v * 255 / 65535; float: scaled so the largest value is white)."""
    if maker == "png":
        path = sixteen_bit_png(tmp_path / "grey16.png")           # 10000 x 10000, about 230 kB
        assert path.stat().st_size < 300_000
    else:
        path = float_tiff(tmp_path / "float.tif", rows_per_strip=64, peak=4.0)   # values 0 .. 4.0
    result = subprocess.run([sys.executable, "-c", _DECODE_PEAK, str(path)], capture_output=True,
                            text=True, timeout=120, cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["mode"] == "RGB" and report["size"] == [10000, 10000] and report["grey"]
    expected = np.array([round(sixteen_bit_value(y, 10000) * 255 / 65535) for y in range(10000)])
    assert np.abs(np.array(report["column"]) - expected).max() <= 1, "every row keeps its value"
    assert report["column"][0] == 255 and report["column"][-1] == 0
    assert report["peak"] < 800, f"decode peaked at {report['peak']:.0f} MB"


def test_renditions_stream_back_from_the_child_as_they_are_made(tmp_path: Path, presets) -> None:
    source = tmp_path / "photo.jpg"
    photo((2400, 1600), 4).save(source, quality=90)
    info, plans = _plans(source, Limits(), presets)
    seen = []

    def on_done(made) -> None:
        seen.append((made.plan.name, made.path.is_file(), bool(render_processes())))

    out, peaks = run_isolated(source, info, plans, tmp_path, on_done)
    assert [r.plan.name for r in out] == [name for name, _file, _alive in seen]
    assert len(out) == len(plans) and all(is_file for _name, is_file, _alive in seen)
    assert seen[0][2], "the first rendition arrives while the child is still rendering"
    assert 0 < peaks.rss < 400 * 2**20
    assert not render_processes()


def test_a_render_past_the_time_limit_is_killed(tmp_path: Path, presets) -> None:
    bomb = scan_bomb_jpeg(tmp_path / "scan-bomb.jpg", scans=1500)   # about 16 s to decode
    limits = Limits(**NO_SCAN_LIMIT, image_time_limit=1.5)
    info, plans = _plans(bomb, limits, presets)
    started = time.monotonic()
    with pytest.raises(LimitExceeded) as caught:
        render_image_isolated(bomb, info, plans, tmp_path, limits=limits)
    assert time.monotonic() - started < 4
    assert caught.value.code == "time-limit" and caught.value.retryable
    assert "longer than the 1.5 s limit" in caught.value.reason
    assert not render_processes(), "the child is killed and reaped"
    assert not list(tmp_path.glob("render-*.log")), "its log goes with it"


def test_a_render_past_the_memory_ceiling_fails_as_out_of_memory(tmp_path: Path, presets) -> None:
    grey = sixteen_bit_png(tmp_path / "grey16.png")                 # about 700 MB of address space
    limits = Limits(image_memory_ceiling=350 * 2**20)
    info, plans = _plans(grey, limits, presets)
    started = time.monotonic()
    with pytest.raises(LimitExceeded) as caught:
        render_image_isolated(grey, info, plans, tmp_path, limits=limits)
    assert time.monotonic() - started < 10
    assert caught.value.code == "out-of-memory" and caught.value.retryable
    assert "350 MB memory ceiling" in caught.value.reason
    assert not render_processes()


def test_a_child_that_dies_fails_the_photo_with_a_retryable_reason(tmp_path: Path, presets) -> None:
    source = tmp_path / "photo.jpg"
    photo((2400, 1600), 5).save(source, quality=90)
    info, plans = _plans(source, Limits(), presets)

    def kill_the_child(_made) -> None:
        for pid in render_processes():
            os.kill(pid, signal.SIGKILL)

    with pytest.raises(LimitExceeded) as caught:
        render_image_isolated(source, info, plans, tmp_path, kill_the_child)
    assert caught.value.code == "render-crashed" and caught.value.retryable
    assert "signal 9" in caught.value.reason
    assert not render_processes()


_WORKER = """
import sys
from pathlib import Path
from pipeline.render.image.isolated import render_image_isolated
from pipeline.plan.image import plan_image
from pipeline.model.presets import load_presets
from pipeline.ingest.probe import probe
from pipeline.ingest.limits import Limits
from tests.media.render_helpers import TEXT
path, scratch = Path(sys.argv[1]), Path(sys.argv[2])
limits = Limits(max_jpeg_scans=10**6, max_jpeg_segments=10**6)
info = probe(path, limits)
plans = plan_image(info, "ab" * 32, [load_presets(Path("presets"))["web"]], TEXT, (0.5, 0.5), False)
render_image_isolated(path, info, plans, scratch, limits=limits)
"""


def test_nothing_outlives_a_killed_worker(tmp_path: Path) -> None:
    """A Celery child killed at its hard time limit (SIGKILL) takes its render server and the render
    child with it, mid-decode."""
    bomb = scan_bomb_jpeg(tmp_path / "scan-bomb.jpg", scans=1500)
    worker = subprocess.Popen([sys.executable, "-c", _WORKER, str(bomb), str(tmp_path)], cwd=REPO)
    try:
        deadline = time.monotonic() + 30
        tree: list[psutil.Process] = []
        while len(tree) < 2 and time.monotonic() < deadline:   # the server and its render child
            time.sleep(0.1)
            tree = psutil.Process(worker.pid).children(recursive=True)
        assert len(tree) == 2, "the worker started a server and a render child"
        worker.kill()
        worker.wait()
        _gone, alive = psutil.wait_procs(tree, timeout=5)
        alive = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
        assert not alive, f"left behind: {alive}"
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
