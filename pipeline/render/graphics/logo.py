"""The station logo: sized to the frame, faded to the preset opacity, placed inside the margins."""

from __future__ import annotations

from functools import cache

from PIL import Image

from pipeline.model.presets import LogoSpec


@cache
def _logo(path: str) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGBA")


@cache
def _scaled(path: str, width: int, opacity: float) -> Image.Image:
    logo = _logo(path)
    height = max(1, round(logo.height * width / logo.width))
    scaled = logo.resize((width, height), Image.Resampling.LANCZOS)
    if opacity < 1:
        alpha = scaled.getchannel("A").point(lambda a: round(a * opacity))
        scaled.putalpha(alpha)
    return scaled


def logo_box(frame: tuple[int, int], spec: LogoSpec, logo_size: tuple[int, int]) -> tuple[int, int]:
    """Top-left corner of the logo in the frame."""
    width, height = frame
    mx, my = round(width * spec.margin), round(height * spec.margin)
    x = mx if spec.position.endswith("left") else width - mx - logo_size[0]
    y = my if spec.position.startswith("top") else height - my - logo_size[1]
    return (x, y)


def place_logo(img: Image.Image, spec: LogoSpec, path: str) -> Image.Image:
    """Return ``img`` with the logo composited (``img`` is not changed)."""
    width = max(8, round(img.width * spec.width))
    logo = _scaled(path, width, spec.opacity)
    x, y = logo_box(img.size, spec, logo.size)
    out = img.copy()
    if out.mode == "RGBA":
        out.alpha_composite(logo, (x, y))
    else:
        out.paste(logo, (x, y), logo)
    return out
