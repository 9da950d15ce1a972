"""Renders match their golden images (SSIM >= 0.99 on every part of the picture): the broadcast blur
fill, the social caption bar, the lower third on a clip frame and the logo placement.

The goldens are made by ``tests/media/make_golden.py`` (run by hand); a failing comparison leaves the
actual render next to a temporary path and names it, with the scores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import structural_similarity

from tests.media.make_golden import SCENES, downscale, golden_path

pytestmark = pytest.mark.media

THRESHOLD = 0.99
TILES = 8
"""The picture is scored in TILES x TILES parts and the worst part counts: a logo moved 20 px or a
line of caption cut changes a few percent of the frame, which a whole-frame mean would forgive."""


def similarity(actual: Image.Image, golden: Image.Image) -> tuple[float, float]:
    """Mean SSIM of the whole picture (colour) and of its worst tile."""
    _mean, local = structural_similarity(np.asarray(actual), np.asarray(golden), channel_axis=2,
                                         data_range=255, full=True)
    local = local.mean(axis=2)
    rows, cols = local.shape
    tiles = [local[r * rows // TILES:(r + 1) * rows // TILES, c * cols // TILES:(c + 1) * cols // TILES].mean()
             for r in range(TILES) for c in range(TILES)]
    return float(local.mean()), float(min(tiles))


def test_tiles_catch_what_the_mean_forgives() -> None:
    golden = Image.new("RGB", (480, 320), (90, 110, 130))
    golden.paste((250, 250, 250), (400, 280, 448, 296))
    moved = Image.new("RGB", (480, 320), (90, 110, 130))
    moved.paste((250, 250, 250), (391, 280, 439, 296))
    mean, worst = similarity(moved, golden)
    assert mean > THRESHOLD > worst
    assert similarity(golden, golden.copy()) == (1.0, 1.0)


@pytest.mark.parametrize("name", list(SCENES))
def test_render_matches_its_golden_image(name: str, tmp_path: Path) -> None:
    with Image.open(golden_path(name)) as stored:
        golden = stored.convert("RGB")
    actual = downscale(SCENES[name](tmp_path))
    assert actual.size == golden.size, f"{name}: rendered {actual.size}, golden {golden.size}"
    mean, worst = similarity(actual, golden)
    if worst < THRESHOLD:
        kept = tmp_path / f"{name}-actual.png"
        actual.save(kept)
        pytest.fail(f"{name}: SSIM {mean:.4f} over the picture, {worst:.4f} in its worst tile (< {THRESHOLD});"
                    f" the render is {kept}, the golden {golden_path(name)}; if the change is intended, run"
                    f" python -m tests.media.make_golden {name}")
