"""Regenerate the golden images in ``tests/media/golden/`` (reference renders for test_golden.py).

Run by hand, from the repository root, only when a change to a picture is intended::

    .venv/bin/python -m tests.media.make_golden            # every scene
    .venv/bin/python -m tests.media.make_golden logo-web   # named scenes only

Then look at each PNG that changed and commit it with the change that explains it. Each scene is
rendered from generated input through the real code path (the image ladder, the graphics, one ffmpeg
run for the clip) and stored downscaled to fit ``BOX``; the test downscales its render the same way
before comparing. Tests never call this module's ``main``: a golden is never rewritten silently.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.ingest.info import AVInfo
from pipeline.ingest.limits import Limits
from pipeline.ingest.probe import probe
from pipeline.model.embedded_text import EmbeddedText
from pipeline.model.presets import Preset, load_presets, parse_preset
from pipeline.model.story import LowerThird
from pipeline.plan.video import plan_video
from pipeline.render.av.clip import render_video
from tests.clips import phone_clip
from tests.conftest import PRESETS
from tests.fixtures import photo
from tests.media.render_helpers import TEXT, load, render

GOLDEN = Path(__file__).resolve().parent / "golden"
BOX = (480, 360)
"""Stored and compared size, at most: keeps each PNG under 200 kB and the comparison about what is
drawn where, not about grain."""

STRAP = LowerThird(name="Bà Lê Thị Minh Tâm", title="Chủ tịch UBND phường Phú Sơn, thành phố Thanh Hóa",
                   start=0.0, end=2.0)
STRAP_AT = 1.0
"""Seconds into the clip of the frame compared (the lower third is on screen from 0 to 2 s)."""


def _still(preset: str, rendition: str, source: Image.Image, scratch: Path, **options: object) -> Image.Image:
    source.save(scratch / "source.jpg", quality=92)
    presets = load_presets(PRESETS)
    outputs = render(scratch / "source.jpg", [presets[preset]], scratch / "out", **options)
    return load(outputs[(preset, rendition, "jpeg")]).convert("RGB")


def barred_portrait() -> Image.Image:
    """A 1500x2000 photo with darker vertical bars every 240 px: a smooth photo alone hardly changes
    when the fill's blur radius does; the bars' edges show how far they were softened."""
    pixels = np.asarray(photo((1500, 2000), 9), dtype=np.float32)
    pixels[:, np.arange(1500) % 240 < 120] *= 0.45
    return Image.fromarray(pixels.astype(np.uint8))


def broadcast_blur_fill(scratch: Path) -> Image.Image:
    """A portrait on the broadcast still: whole, over a darkened blur of itself, logo top right."""
    return _still("broadcast", "still-1080", barred_portrait(), scratch)


def social_caption_bar(scratch: Path) -> Image.Image:
    """The social square with the Vietnamese caption in its bar along the bottom, logo top left."""
    return _still("social", "square", photo((2400, 1600), 5), scratch, text=TEXT)


def logo_web(scratch: Path) -> Image.Image:
    """The web 1024 px rendition with the station logo bottom right inside the margin."""
    return _still("web", "w1024", photo((2400, 1600), 4), scratch)


def _broadcast_proxy_only() -> Preset:
    """The broadcast preset as shipped, with its XDCAM output left out (same lower third, logo and
    proxy encode; one output keeps the ffmpeg run short)."""
    data = tomllib.loads((PRESETS / "broadcast.toml").read_text(encoding="utf-8"))
    data["video"]["outputs"] = [o for o in data["video"]["outputs"] if o["type"] == "mp4"]
    return parse_preset(data, PRESETS, "broadcast.toml")


def frame_at(path: Path, seconds: float) -> Image.Image:
    """One decoded frame of ``path`` at ``seconds``, by ffmpeg."""
    data = subprocess.run(["ffmpeg", "-v", "error", "-ss", str(seconds), "-i", str(path), "-frames:v", "1",
                           "-f", "image2pipe", "-vcodec", "png", "-"],
                          capture_output=True, check=True, timeout=60).stdout
    target = path.with_name(f"frame-{seconds}.png")
    target.write_bytes(data)
    return load(target).convert("RGB")


def lower_third_clip(scratch: Path) -> Image.Image:
    """A frame of the broadcast proxy of a phone clip, its lower third on screen (and the logo)."""
    source = phone_clip(scratch / "phone.mp4", seconds=2.0)
    info = probe(source, Limits())
    assert isinstance(info, AVInfo), info
    plan = plan_video(info, "ab" * 32, [_broadcast_proxy_only()], EmbeddedText(), lower_third=STRAP)
    (scratch / "out").mkdir()
    (result,) = render_video(source, plan, scratch / "out")
    return frame_at(result.path, STRAP_AT)


SCENES: dict[str, Callable[[Path], Image.Image]] = {
    "broadcast-blur-fill": broadcast_blur_fill,
    "social-caption-bar": social_caption_bar,
    "lower-third-clip": lower_third_clip,
    "logo-web": logo_web,
}
"""Golden name -> the render it keeps: ``golden/<name>.png``."""


def golden_path(name: str) -> Path:
    return GOLDEN / f"{name}.png"


def downscale(img: Image.Image) -> Image.Image:
    """``img`` shrunk to fit ``BOX``, in proportion (how goldens are stored and compared)."""
    scale = min(BOX[0] / img.width, BOX[1] / img.height)
    size = (round(img.width * scale), round(img.height * scale))
    return img.convert("RGB").resize(size, Image.Resampling.LANCZOS)


def main(names: list[str]) -> int:
    unknown = [n for n in names if n not in SCENES]
    if unknown:
        print(f"unknown scene(s): {', '.join(unknown)}; known: {', '.join(SCENES)}", file=sys.stderr)
        return 2
    GOLDEN.mkdir(exist_ok=True)
    for name in names or list(SCENES):
        with tempfile.TemporaryDirectory(prefix=f"golden-{name}-") as scratch:
            small = downscale(SCENES[name](Path(scratch)))
        small.save(golden_path(name), optimize=True)
        print(f"{golden_path(name)}: {small.width}x{small.height}, {golden_path(name).stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
