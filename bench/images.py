"""Still-image benchmark: our pipeline (Pillow) against a pyvips cascade making the same set.

Run with the project's virtual environment, no arguments needed::

    .venv/bin/python bench/images.py [--runs 3] [--keep DIR]

What it does
------------
1. Generates two deterministic, photo-like sources (smooth shapes, hard-edged blocks, grain) in
   a temporary folder: a 24 MP camera JPEG (6000x4000, q92, EXIF Orientation=1) and a 12 MP
   phone JPEG (4032x3024 stored sideways, q90, EXIF Orientation=6), plus a small warm-up JPEG.
   Generation is not timed.
2. **ours**: ``probe()``, ``plan_image()`` with the ``web`` and ``broadcast`` presets from
   ``load_presets()`` (logos included), then ``render_image()`` into a scratch folder: exactly
   what ``process_asset`` does per asset, less storage. All three steps are timed.
3. **pyvips** (baseline): ``pyvips.Image.thumbnail()`` of the file to the largest width needed
   (it applies EXIF orientation itself), copied into memory, then a Lanczos resize cascade down
   through the other widths (each from the smallest one already made that is large enough, as
   ours does), the broadcast still cut from the very region our plan chose (crop, or blurred
   fill for a portrait), the same logo at the same width, opacity and position (``composite2``
   over), and JPEG/WebP at the same quality, subsampling, progressive and effort settings. The
   plan objects supply the geometry and are made before the clock starts. The baseline strips
   all metadata; ours writes EXIF, XMP and (JPEG) IPTC, a few kB per file. The vips operation
   cache is off (``cache_set_max(0)``); vips uses its default thread pool.

Method
------
Every (approach, source) measurement runs in a fresh subprocess, so imports, caches and memory
do not leak between them. The child imports what its approach needs, renders the warm-up image
once (imports, codec and thread-pool start-up), then times one render of the source with
``time.perf_counter`` and reports its CPU time (user + system, all threads) and its peak RSS:
``VmHWM`` from /proc, the whole process's high-water mark with interpreter, libraries and the
warm-up included (``ru_maxrss`` is not used on Linux: a child started from the parent inherits
the parent's peak in it). "RSS before" is the resident size just before the timed render, so
peak minus that is roughly what the render itself needed. ``--runs`` rounds are made,
alternating which approach goes first; the table shows medians.

The outputs of the last round are checked: both approaches must make the same set of renditions
(preset, name, format), with dimensions read back from the files equal within 1 px; SSIM
(scikit-image) between the two w1024 JPEGs and the two broadcast stills shows the pictures match.

Reading the result
------------------
``ratio`` is ours / pyvips wall time: below 1.00 ours is faster. Per source it compares
medians; the overall figure (the last line, ``ratio 0.93`` style) is the sum of our medians over
the sum of the baseline's. The research goal in ``shared/reference/images.md`` is a full-set
ratio <= 1.25 and a peak-RSS ratio <= 1.5 on the same machine. Compare ratios, not absolute
times, between machines.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import PIL
from machine import work_folder
from PIL import Image, ImageDraw, ImageFilter

from pipeline.ingest.info import ImageInfo
from pipeline.ingest.limits import Limits
from pipeline.ingest.probe import probe
from pipeline.model.embedded_text import EmbeddedText
from pipeline.model.presets import LogoSpec, Preset, load_presets
from pipeline.model.story import Asset, StoryInfo
from pipeline.plan.image import ImagePlan, fill_region, plan_image
from pipeline.render.graphics.logo import logo_box
from pipeline.render.image.ladder import ENCODE_THREADS, render_image
from pipeline.run.asset import embedded_text

if TYPE_CHECKING:
    import pyvips

APPROACHES = ("ours", "ours-1t", "pyvips")
"""``ours-1t``: ours with one encode thread, shown for reference (the ratio uses ``ours``)."""
PRESETS = ("web", "broadcast")
ORIENTATION_TAG = 0x0112
MB = 1024 * 1024


@dataclass(frozen=True)
class SourceSpec:
    """One generated test photo."""

    name: str
    label: str
    stored: tuple[int, int]
    quality: int
    orientation: int
    seed: int


SOURCES = (
    SourceSpec("camera.jpg", "24 MP camera", (6000, 4000), 92, 1, seed=24),
    SourceSpec("phone.jpg", "12 MP phone", (4032, 3024), 90, 6, seed=12),
)
WARMUP = SourceSpec("warmup.jpg", "warm-up", (1600, 1200), 90, 6, seed=1)


# --- source generation (not timed) ---------------------------------------------------------


def _muted(rng: np.random.Generator, low: int = 0, high: int = 256) -> tuple[int, int, int]:
    """A random colour pulled halfway towards grey, so the scene looks less like a test card."""
    red, green, blue = (int(v) for v in (rng.integers(low, high, 3) + 128) // 2)
    return red, green, blue


def draw_scene(size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """Sky gradient, soft blobs (drawn at 1/8 size, blurred, upscaled) and hard-edged blocks
    with windows at full size."""
    width, height = size
    small_w, small_h = width // 8, height // 8
    ramp = np.linspace(0.0, 1.0, small_h)[:, None, None]
    top, bottom = rng.uniform(90, 210, 3), rng.uniform(40, 150, 3)
    sky = (top * (1 - ramp) + bottom * ramp) * np.ones((1, small_w, 1))
    small = Image.fromarray(sky.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(small)
    for _ in range(40):
        cx, cy = rng.uniform(0, small_w), rng.uniform(0, small_h)
        rx, ry = rng.uniform(0.02, 0.25) * small_w, rng.uniform(0.02, 0.25) * small_h
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=_muted(rng))
    small = small.filter(ImageFilter.GaussianBlur(small_w / 150))
    img = small.resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(30):
        x0, y0 = rng.uniform(0, width), rng.uniform(0.3 * height, height)
        bw, bh = rng.uniform(0.02, 0.1) * width, rng.uniform(0.05, 0.4) * height
        draw.rectangle((x0, y0 - bh, x0 + bw, y0), fill=_muted(rng, 0, 200))
        for _ in range(20):
            wx, wy = rng.uniform(x0, x0 + bw), rng.uniform(y0 - bh, y0)
            draw.rectangle((wx, wy, wx + 0.004 * width, wy + 0.006 * height),
                           fill=_muted(rng, 150, 256))
    return img.filter(ImageFilter.GaussianBlur(1.0))


def texture(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Luminance texture at several scales (noise drawn at 1/2 ... 1/16 size, upscaled), so the
    downscaled renditions keep detail as a real photo's do."""
    total = np.zeros((size[1], size[0]), np.float32)
    for factor in (2, 4, 8, 16):
        noise = rng.normal(0, 6, (size[1] // factor, size[0] // factor)).astype(np.float32)
        total += np.asarray(Image.fromarray(noise, "F").resize(size, Image.Resampling.BICUBIC))
    return total


def draw_photo(size: tuple[int, int], seed: int) -> Image.Image:
    """A deterministic photo-like RGB picture: a scene, multi-scale texture and fine luminance and
    chroma grain, so JPEG sizes come out like a real photo's."""
    rng = np.random.default_rng(seed)
    pixels = np.asarray(draw_scene(size, rng)).copy()
    detail = texture(size, rng)
    for row in range(0, size[1], 256):
        block = pixels[row:row + 256].astype(np.float32) + detail[row:row + 256, :, None]
        block += rng.normal(0, 3, (*block.shape[:2], 1)) + rng.normal(0, 2, block.shape)
        pixels[row:row + 256] = np.clip(block, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def write_source(spec: SourceSpec, folder: Path) -> Path:
    """Write ``spec`` as a JPEG with camera EXIF; Orientation 6 is stored rotated 90 deg CCW."""
    upright = spec.stored if spec.orientation < 5 else (spec.stored[1], spec.stored[0])
    img = draw_photo(upright, spec.seed)
    if spec.orientation == 6:
        img = img.transpose(Image.Transpose.ROTATE_90)
    elif spec.orientation != 1:
        raise ValueError("only orientations 1 and 6 are generated")
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = spec.orientation
    exif[0x010F] = "BenchCam"  # Make: kept by our allow-listed EXIF
    exif[0x0110] = "Model 1"
    path = folder / spec.name
    img.save(path, "JPEG", quality=spec.quality, exif=exif.tobytes())
    return path


# --- the two approaches (run inside a child process) ---------------------------------------


def bench_text() -> EmbeddedText:
    """Vietnamese caption and credits, as a real story would embed them."""
    story = StoryInfo(
        id="bench-story", title="Thanh Hóa tăng cường kỷ cương hành chính",
        byline="Đình Hà – Đức Anh", source="Phòng chống tham nhũng",
        published=datetime(2023, 9, 12, 21, 15, tzinfo=timezone(timedelta(hours=7))),
        copyright="Thanh Hoa Radio and Television")
    asset = Asset(file="photo.jpg", caption="Đoàn kiểm tra làm việc tại UBND huyện Đông Sơn.",
                  credit="Đình Hà")
    return embedded_text(story, asset)


def make_plans(path: Path, presets: list[Preset], text: EmbeddedText
               ) -> tuple[ImageInfo, list[ImagePlan]]:
    """Probe and plan one source, as ``process_asset`` does."""
    info = probe(path, Limits())
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return info, plan_image(info, sha, presets, text)


def render_with_ours(path: Path, presets: list[Preset], text: EmbeddedText, out: Path,
                     threads: int = ENCODE_THREADS) -> Callable[[], list[dict[str, Any]]]:
    """Return the timed step for our pipeline: probe, plan and render (all three timed)."""
    sha = hashlib.sha256(path.read_bytes()).hexdigest()  # the content hash is not render work

    def run() -> list[dict[str, Any]]:
        info = probe(path, Limits())
        plans = plan_image(info, sha, presets, text)
        done = render_image(path, info, plans, out, threads=threads)
        return [{"preset": r.plan.preset, "name": r.plan.name, "format": r.plan.spec.format,
                 "path": str(r.path), "bytes": r.bytes} for r in done]

    return run


Rung = tuple[float, "pyvips.Image"]


def _smallest_rung(rungs: list[Rung], scale: float) -> Rung:
    """The smallest image made so far that is still at least ``scale`` of the source."""
    fitting = [rung for rung in rungs if rung[0] >= scale - 1e-9]
    return min(fitting, key=lambda rung: rung[0]) if fitting else max(rungs, key=lambda r: r[0])


def _vips_resize(img: pyvips.Image, size: tuple[int, int]) -> pyvips.Image:
    if (img.width, img.height) == size:
        return img
    return img.resize(size[0] / img.width, vscale=size[1] / img.height, kernel="lanczos3")


def _vips_region(rungs: list[Rung], scale: float, region: tuple[float, float, float, float],
                 size: tuple[int, int]) -> pyvips.Image:
    """``region`` (source pixels) resized to ``size`` from the best rung."""
    rung_scale, img = _smallest_rung(rungs, scale)
    left, top, right, bottom = (round(v * rung_scale) for v in region)
    left, top = max(0, left), max(0, top)
    right, bottom = min(img.width, right), min(img.height, bottom)
    if (left, top, right, bottom) != (0, 0, img.width, img.height):
        img = img.crop(left, top, right - left, bottom - top)
    return _vips_resize(img, size)


def _vips_blur_fill(rungs: list[Rung], plan: ImagePlan, info: ImageInfo) -> pyvips.Image:
    """The whole picture fitted in the frame over a blurred, darkened fill of itself."""
    frame = (plan.width, plan.height)
    left, top, width, height = plan.placement
    fg = _vips_region(rungs, plan.scale, plan.region, (width, height))
    cover = fill_region((info.width, info.height), frame, (0.5, 0.5))
    small = (max(1, frame[0] // 8), max(1, frame[1] // 8))
    bg = _vips_region(rungs, small[0] / (cover[2] - cover[0]), cover, small).gaussblur(3)
    bg = bg.resize(frame[0] / small[0], vscale=frame[1] / small[1], kernel="cubic")
    bg = (bg * 0.65).cast("uchar")
    return bg.insert(fg, left, top)


def _vips_logo(frame: pyvips.Image, spec: LogoSpec, logo_file: str) -> pyvips.Image:
    """Composite the logo at the plan's width fraction, opacity and corner."""
    import pyvips

    logo = pyvips.Image.new_from_file(logo_file)
    width = max(8, round(frame.width * spec.width))
    height = max(1, round(logo.height * width / logo.width))
    logo = (logo.premultiply()
            .resize(width / logo.width, vscale=height / logo.height, kernel="lanczos3")
            .unpremultiply().cast("uchar"))
    if spec.opacity < 1:
        alpha = (logo.extract_band(3) * spec.opacity).rint().cast("uchar")
        logo = logo.extract_band(0, n=3).bandjoin(alpha)
    x, y = logo_box((frame.width, frame.height), spec, (logo.width, logo.height))
    return frame.composite2(logo, "over", x=x, y=y).extract_band(0, n=3)


def _vips_encode(img: pyvips.Image, plan: ImagePlan) -> bytes:
    spec = plan.spec
    data: bytes
    if spec.format == "jpeg":
        data = img.jpegsave_buffer(
            Q=spec.quality, interlace=spec.progressive, optimize_coding=False, keep="none",
            subsample_mode="off" if spec.subsampling == "4:4:4" else "on")
    elif spec.format == "webp":
        data = img.webpsave_buffer(Q=spec.quality, effort=min(spec.effort, 6), keep="none")
    else:
        raise SystemExit(f"the pyvips baseline does not encode {spec.format} ({plan.preset})")
    return data


def render_with_pyvips(path: Path, presets: list[Preset], text: EmbeddedText, out: Path
                       ) -> Callable[[], list[dict[str, Any]]]:
    """Return the timed step for the pyvips cascade; plans (geometry only) are made untimed."""
    import pyvips

    info, plans = make_plans(path, presets, text)
    if any(plan.caption for plan in plans):
        raise SystemExit("the pyvips baseline does not burn in captions: use presets without them")

    def run() -> list[dict[str, Any]]:
        top = max(plan.scale for plan in plans)
        width = min(info.width, round(info.width * top))
        base = pyvips.Image.thumbnail(str(path), width, height=info.height, size="down")
        base = base.copy_memory()
        rungs: list[Rung] = [(base.width / info.width, base)]
        frames: dict[tuple[Any, ...], pyvips.Image] = {}
        done = []
        for plan in plans:
            geometry = (plan.layout, plan.width, plan.height, plan.region, plan.placement,
                        plan.logo, plan.preset)
            if geometry not in frames:
                if plan.layout == "blur-fill":
                    img = _vips_blur_fill(rungs, plan, info).copy_memory()
                else:
                    img = _vips_region(rungs, plan.scale, plan.region,
                                       (plan.width, plan.height)).copy_memory()
                    if plan.layout == "scale":
                        rungs.append((img.width / info.width, img))
                if plan.logo and plan.logo_file:
                    img = _vips_logo(img, plan.logo, plan.logo_file).copy_memory()
                frames[geometry] = img
            data = _vips_encode(frames[geometry], plan)
            target = out / f"{plan.preset}-{plan.name}.{plan.spec.extension}"
            target.write_bytes(data)
            done.append({"preset": plan.preset, "name": plan.name, "format": plan.spec.format,
                         "path": str(target), "bytes": len(data)})
        return done

    return run


def _memory_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process from /proc, in MB.

    ``VmHWM`` belongs to the address space made at exec, so unlike ``ru_maxrss`` it does not
    carry over the parent's peak (which generated 24 MP pictures) into the child.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    if field == "VmHWM":  # not Linux: ru_maxrss (kB on Linux, bytes on macOS) is the fallback
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / MB if sys.platform == "darwin" else peak / 1024
    return 0.0


def _fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def measure_one(approach: str, source: Path, warmup: Path, out: Path) -> dict[str, Any]:
    """Child process body: warm up on ``warmup``, then time one render of ``source``."""
    if approach == "pyvips":
        import pyvips

        pyvips.cache_set_max(0)
        prepare = render_with_pyvips
    elif approach == "ours-1t":
        prepare = partial(render_with_ours, threads=1)
    else:
        prepare = render_with_ours
    all_presets = load_presets()
    presets = [all_presets[name] for name in PRESETS]
    text = bench_text()
    prepare(warmup, presets, text, _fresh_dir(out / "warmup"))()
    if approach.startswith("ours"):
        # The warm-up's broadcast still has the same logo width as the timed one: forget it, so
        # ours scales its logo in the timed run just as the baseline does.
        from pipeline.render.graphics import logo

        logo._scaled.cache_clear()
        logo._logo.cache_clear()
    step = prepare(source, presets, text, _fresh_dir(out / "render"))
    rss_before = _memory_mb("VmRSS")
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    outputs = step()
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage.ru_utime - cpu_before.ru_utime) + (usage.ru_stime - cpu_before.ru_stime)
    return {"wall": wall, "cpu": cpu, "peak_mb": _memory_mb("VmHWM"),
            "rss_before_mb": rss_before, "outputs": outputs}


# --- parent: schedule, verify, report ------------------------------------------------------


@dataclass
class Measurement:
    wall: float
    cpu: float
    peak_mb: float
    rss_before_mb: float
    outputs: list[dict[str, Any]]


def measure_in_subprocess(approach: str, source: Path, warmup: Path, out: Path) -> Measurement:
    """Run one measurement in a fresh interpreter and read its JSON report."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", approach, str(source),
               str(warmup), str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{approach} on {source.name} failed:\n{done.stderr}")
    return Measurement(**json.loads(done.stdout.strip().splitlines()[-1]))


def read_outputs(measurement: Measurement) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The outputs keyed by (preset, name, format), with dimensions read back from the files."""
    found = {}
    for item in measurement.outputs:
        with Image.open(item["path"]) as img:
            size = img.size
        found[(item["preset"], item["name"], item["format"])] = {**item, "size": size}
    return found


def ssim(path_a: str, path_b: str) -> float:
    """SSIM over RGB of two renditions, cropped to their common size (they may differ by 1 px)."""
    from skimage.metrics import structural_similarity

    with Image.open(path_a) as a, Image.open(path_b) as b:
        width, height = min(a.width, b.width), min(a.height, b.height)
        pa = np.asarray(a.convert("RGB").crop((0, 0, width, height)))
        pb = np.asarray(b.convert("RGB").crop((0, 0, width, height)))
    compare: Callable[..., float] = structural_similarity
    return float(compare(pa, pb, channel_axis=2, data_range=255))


def verify(label: str, ours: Measurement, base: Measurement) -> list[str]:
    """Compare the two output sets; return report lines (problems start with 'FAIL')."""
    a, b = read_outputs(ours), read_outputs(base)
    lines = [f"{label}:"]
    if set(a) != set(b):
        lines.append(f"  FAIL output sets differ: only ours {sorted(set(a) - set(b))},"
                     f" only pyvips {sorted(set(b) - set(a))}")
    lines.append(f"  {'rendition':<26} {'ours':>11} {'pyvips':>11} {'ours B':>10} {'pyvips B':>10}")
    for key in sorted(set(a) & set(b), key=lambda k: (k[0], -a[k]["size"][0], k[2])):
        (wa, ha), (wb, hb) = a[key]["size"], b[key]["size"]
        mark = "" if abs(wa - wb) <= 1 and abs(ha - hb) <= 1 else "  FAIL dimensions"
        name = f"{key[0].split('@')[0]} {key[1]} {key[2]}"
        lines.append(f"  {name:<26} {f'{wa}x{ha}':>11} {f'{wb}x{hb}':>11}"
                     f" {a[key]['bytes']:>10,} {b[key]['bytes']:>10,}{mark}")
    for key in sorted(set(a) & set(b)):
        if key[1] in ("w1024", "still-1080") and key[2] == "jpeg":
            value = ssim(a[key]["path"], b[key]["path"])
            mark = "" if value > 0.95 else "  FAIL (expected > 0.95)"
            lines.append(f"  SSIM ours vs pyvips, {key[1]} JPEG: {value:.4f}{mark}")
    return lines


def run_benchmark(runs: int, folder: Path) -> int:
    sources_dir = _fresh_dir(folder / "sources")
    print(f"generating sources in {sources_dir} ...", file=sys.stderr)
    warmup = write_source(WARMUP, sources_dir)
    sources = {spec.label: write_source(spec, sources_dir) for spec in SOURCES}
    results: dict[tuple[str, str], list[Measurement]] = {}
    for round_no in range(runs):
        order = APPROACHES if round_no % 2 == 0 else tuple(reversed(APPROACHES))
        for label, path in sources.items():
            for approach in order:
                out = folder / "out" / path.stem / approach
                m = measure_in_subprocess(approach, path, warmup, out)
                results.setdefault((label, approach), []).append(m)
                print(f"run {round_no + 1}/{runs} {label} {approach}: {m.wall:.3f} s",
                      file=sys.stderr)

    import pyvips

    print(f"Pillow {PIL.__version__}, pyvips {pyvips.__version__} (libvips"
          f" {pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}),"
          f" {os.cpu_count()} CPUs, median of {runs} fresh processes per cell")
    for spec in SOURCES:
        path = sources[spec.label]
        print(f"  {spec.label}: {path.name} {spec.stored[0]}x{spec.stored[1]} q{spec.quality}"
              f" Orientation={spec.orientation}, {path.stat().st_size / 1e6:.1f} MB")
    header = (f"{'source':<14} {'approach':<8} {'wall s':>7} {'cpu s':>6} {'peak RSS MB':>12}"
              f" {'RSS before':>11} {'outputs':>8} {'total bytes':>12}  runs (wall s)")
    print()
    print(header)
    print("-" * len(header))
    medians: dict[tuple[str, str], float] = {}
    peaks: dict[tuple[str, str], float] = {}
    for label in sources:
        for approach in APPROACHES:
            cell = results[(label, approach)]
            medians[(label, approach)] = statistics.median(m.wall for m in cell)
            peaks[(label, approach)] = statistics.median(m.peak_mb for m in cell)
            last = cell[-1]
            print(f"{label:<14} {approach:<8} {medians[(label, approach)]:>7.3f}"
                  f" {statistics.median(m.cpu for m in cell):>6.2f}"
                  f" {peaks[(label, approach)]:>12.0f}"
                  f" {statistics.median(m.rss_before_mb for m in cell):>11.0f}"
                  f" {len(last.outputs):>8} {sum(o['bytes'] for o in last.outputs):>12,}  "
                  + " ".join(f"{m.wall:.3f}" for m in cell))
    print()
    print("ours / pyvips (below 1.00: ours is faster or smaller)")
    for label in sources:
        wall = medians[(label, "ours")] / medians[(label, "pyvips")]
        rss = peaks[(label, "ours")] / peaks[(label, "pyvips")]
        single = medians[(label, "ours-1t")] / medians[(label, "pyvips")]
        print(f"  {label:<14} wall {wall:.2f}   peak RSS {rss:.2f}   (one encode thread: wall"
              f" {single:.2f})")
    print()
    print("Verification (last round; bytes: ours embeds EXIF + XMP + IPTC, pyvips strips all):")
    failed = False
    for label in sources:
        lines = verify(label, results[(label, "ours")][-1], results[(label, "pyvips")][-1])
        failed = failed or any("FAIL" in line for line in lines)
        print("\n".join(lines))
    print()
    total_ours = sum(medians[(label, "ours")] for label in sources)
    total_base = sum(medians[(label, "pyvips")] for label in sources)
    print(f"overall: ours {total_ours:.3f} s, pyvips {total_base:.3f} s"
          f"{'  (VERIFICATION FAILED)' if failed else ''}")
    total_single = sum(medians[(label, "ours-1t")] for label in sources)
    print(f"one encode thread: ours-1t {total_single:.3f} s, ratio {total_single / total_base:.2f}")
    print(f"ratio {total_ours / total_base:.2f}")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh-process runs per cell")
    parser.add_argument("--keep", metavar="DIR", help="keep sources and outputs in DIR")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        approach, source, warmup, out = args.child
        print(json.dumps(measure_one(approach, Path(source), Path(warmup), Path(out))))
        return 0
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    with work_folder(args.keep, "images") as folder:
        return run_benchmark(args.runs, folder)


if __name__ == "__main__":
    sys.exit(main())
