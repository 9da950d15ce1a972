"""Render real files through probe -> plan -> render, as the pipeline does per asset."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from pipeline.ingest.limits import Limits
from pipeline.ingest.probe import probe
from pipeline.model.embedded_text import EmbeddedText
from pipeline.plan.image import plan_image
from pipeline.render.image.ladder import render_image

TEXT = EmbeddedText(
    caption="Bà Lê Thị Minh Tâm, Chủ tịch UBND phường Phú Sơn, thành phố Thanh Hóa",
    byline="Đình Hà – Đức Anh", credit="Đình Hà", copyright="Thanh Hoa Radio and Television",
    source="Phòng chống tham nhũng",
    headline="Thành phố Thanh Hóa tăng cường kỷ cương, kỷ luật công vụ",
    created="2023-09-12T21:15:00+07:00")


def render(path: Path, presets: list, scratch: Path, *, focus=(0.5, 0.5), text=TEXT,
           branded=False) -> dict[tuple[str, str, str], Path]:
    """Render and return output files by (preset name, rendition name, format)."""
    info = probe(path, Limits())
    plans = plan_image(info, "ab" * 32, presets, text, focus, branded)
    scratch.mkdir(parents=True, exist_ok=True)
    out = render_image(path, info, plans, scratch)
    return {(r.plan.preset.split("@")[0], r.plan.name, r.plan.spec.format): r.path for r in out}


def load(path: Path) -> Image.Image:
    with Image.open(path) as img:
        img.load()
        return img
