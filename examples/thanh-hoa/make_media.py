#!/usr/bin/env python3
"""Generate the raw media of the Thanh Hoa sample story.

Everything is synthetic and deterministic (fixed seeds): photo-like scenes
(sky, hills, buildings with windows, trees, a foreground, optionally a person)
drawn at reduced resolution, upscaled, then given per-pixel film grain so the
JPEGs have realistic sizes and encode/decode costs. The video clip is made
with ffmpeg's lavfi sources.

Usage:
    python examples/thanh-hoa/make_media.py [--force] [--out DIR]

Only the standard library, Pillow and numpy are needed (plus the ffmpeg
binary for the clip). Files that already exist with the expected pixel size
are skipped unless --force is given.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
from PIL import ExifTags, Image, ImageChops, ImageCms, ImageDraw, ImageFilter, ImageFont
from PIL.TiffImagePlugin import IFDRational

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "media"
FONT_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
FONT_REGULAR = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

# Thanh Hoa city centre.
GPS_LAT = 19.807  # N
GPS_LON = 105.776  # E

CANON = ("Canon", "EOS R6")
IPHONE = ("Apple", "iPhone 13")

DOWNSCALE = 3  # scenes are drawn at 1/DOWNSCALE of the final size
GRAIN_SIGMA = 5.0  # film grain, in 8-bit code values


@dataclass(frozen=True)
class Person:
    x: float  # face centre, fraction of the (upright) width
    y: float  # face centre, fraction of the (upright) height
    head: float  # head height as a fraction of the (upright) image height


@dataclass(frozen=True)
class Photo:
    name: str
    width: int  # upright (displayed) size
    height: int
    quality: int = 90
    style: str = "morning"
    foreground: str = "street"
    person: Person | None = None
    camera: tuple[str, str] | None = None
    date: str | None = None
    gps: bool = False
    serial: str | None = None
    icc: bool = False
    orientation: int = 1  # 1 = stored upright, 6 = stored rotated (display needs 90 deg CW)

    @property
    def stored_size(self) -> tuple[int, int]:
        if self.orientation in (5, 6, 7, 8):
            return (self.height, self.width)
        return (self.width, self.height)


PHOTOS: list[Photo] = [
    Photo(
        "anh-02.jpg",
        6000,
        4000,
        quality=92,
        style="morning",
        foreground="desk",
        camera=CANON,
        date="2023:09:12 08:30:00",
        gps=True,
        serial="0123456789",
        icc=True,
    ),
    Photo(
        "anh-03.jpg",
        3024,
        4032,
        quality=90,
        style="noon",
        foreground="street",
        person=Person(0.55, 0.52, 0.06),
        camera=IPHONE,
        date="2023:09:12 09:05:12",
        gps=True,
        orientation=6,
    ),
    Photo(
        "anh-05.jpg",
        3000,
        4000,
        quality=90,
        style="overcast",
        foreground="plaza",
        person=Person(0.5, 0.35, 0.16),
    ),
    Photo(
        "anh-06.jpg",
        6000,
        4000,
        quality=90,
        style="noon",
        foreground="river",
        camera=CANON,
        date="2023:09:12 10:12:40",
        gps=True,
    ),
    Photo(
        "anh-07.jpg",
        4032,
        3024,
        quality=90,
        style="overcast",
        foreground="street",
        camera=IPHONE,
        date="2023:09:12 11:20:03",
    ),
    Photo(
        "anh-08.jpg",
        6000,
        4000,
        quality=90,
        style="morning",
        foreground="plaza",
        person=Person(0.3, 0.4, 0.1),
        camera=CANON,
        date="2023:09:12 14:02:55",
    ),
    Photo(
        "anh-09.jpg",
        6000,
        4000,
        quality=90,
        style="afternoon",
        foreground="fields",
        camera=CANON,
        date="2023:09:12 15:45:10",
    ),
    Photo(
        "anh-10.jpg",
        4032,
        3024,
        quality=90,
        style="sunset",
        foreground="river",
        camera=IPHONE,
        date="2023:09:12 17:38:21",
        gps=True,
    ),
    Photo(
        "anh-11.jpg",
        6000,
        4000,
        quality=90,
        style="dusk",
        foreground="street",
        camera=CANON,
        date="2023:09:12 18:25:47",
    ),
]

GRAPHIC_NAME = "anh-04.png"
GRAPHIC_SIZE = (1600, 900)

CLIP_NAME = "clip-thanh-hoa.mp4"
CLIP_SIZE = (1920, 1080)
CLIP_SECONDS = 12

# (sky top, sky at horizon, sun/glow colour, overall light level)
SKIES = {
    "morning": ((92, 142, 205), (214, 222, 228), (255, 236, 200), 1.00),
    "noon": ((58, 116, 196), (176, 206, 232), (255, 252, 240), 1.05),
    "afternoon": ((80, 128, 190), (222, 214, 190), (255, 230, 180), 1.00),
    "overcast": ((150, 158, 166), (206, 210, 212), (235, 235, 235), 0.92),
    "sunset": ((70, 82, 140), (246, 168, 104), (255, 190, 120), 0.90),
    "dusk": ((28, 38, 78), (150, 108, 120), (255, 170, 110), 0.70),
}

BUILDING_COLOURS = [
    (236, 222, 170),
    (226, 226, 220),
    (198, 214, 226),
    (214, 170, 130),
    (238, 206, 160),
    (190, 190, 186),
    (222, 196, 196),
    (176, 196, 170),
]
SKIN_TONES = [(224, 182, 150), (206, 160, 124), (190, 142, 108), (232, 196, 168)]
SHIRT_COLOURS = [(40, 70, 130), (170, 40, 48), (240, 240, 236), (60, 110, 80), (220, 170, 60)]


# --------------------------------------------------------------------------- helpers


def seed_for(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def jitter(rng: np.random.Generator, colour, amount: float = 12.0) -> np.ndarray:
    return np.clip(np.asarray(colour, np.float32) + rng.normal(0.0, amount, 3), 0, 255)


def mix(a, b, t: float) -> tuple[int, int, int]:
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    return tuple(round(v) for v in a * (1 - t) + b * t)


def rgb(c) -> tuple[int, int, int]:
    return tuple(round(float(v)) for v in c)


def human_size(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.2f} MB"
    return f"{n / 1000:.1f} kB"


def atomic_save(path: Path, writer) -> None:
    tmp = path.with_name(path.name + ".part")
    try:
        writer(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# --------------------------------------------------------------------------- scene


def draw_scene(
    w: int, h: int, style: str, foreground: str, person: Person | None, rng: np.random.Generator
) -> Image.Image:
    """Draw an upright photo-like scene at (w, h) and return it as RGB."""
    sky_top, sky_hor, glow_col, light = SKIES[style]
    sky_top = jitter(rng, sky_top, 8)
    sky_hor = jitter(rng, sky_hor, 8)
    horizon = int(h * rng.uniform(0.50, 0.62))

    # Sky: vertical gradient (slightly non-linear) plus a sun glow.
    t = (np.linspace(0.0, 1.0, h, dtype=np.float32) ** 1.4)[:, None, None]
    img = sky_top[None, None, :] * (1 - t) + sky_hor[None, None, :] * t
    img = np.broadcast_to(img, (h, w, 3)).copy()
    sx, sy = rng.uniform(0.1, 0.9) * w, horizon * rng.uniform(0.35, 0.9)
    yy, xx = np.ogrid[0:h, 0:w]
    d2 = ((xx - sx) ** 2 + (yy - sy) ** 2) / (0.35 * max(w, h)) ** 2
    glow = np.exp(-d2).astype(np.float32)[:, :, None]
    img += glow * (np.asarray(glow_col, np.float32) - img) * 0.45

    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")

    # Clouds: soft blurred ellipses.
    if style != "dusk":
        clouds = Image.new("L", (w, h), 0)
        cd = ImageDraw.Draw(clouds)
        for _ in range(int(rng.integers(4, 10))):
            cx, cy = rng.uniform(0, w), rng.uniform(0.02, 0.8) * horizon
            cw, ch = rng.uniform(0.08, 0.3) * w, rng.uniform(0.02, 0.06) * h
            for _ in range(5):
                ox, oy = rng.normal(0, cw * 0.3), rng.normal(0, ch * 0.3)
                cd.ellipse(
                    (cx + ox - cw / 2, cy + oy - ch / 2, cx + ox + cw / 2, cy + oy + ch / 2),
                    fill=int(rng.integers(60, 150)),
                )
        clouds = clouds.filter(ImageFilter.GaussianBlur(max(w, h) / 120))
        cloud_col = (250, 250, 250) if style not in ("sunset",) else (255, 214, 190)
        im = Image.composite(Image.new("RGB", (w, h), cloud_col), im, clouds)

    d = ImageDraw.Draw(im)
    haze = sky_hor

    # Distant hills (hazy).
    for layer, (amp, t_haze) in enumerate(((0.10, 0.65), (0.06, 0.45))):
        base = horizon - h * rng.uniform(0.01, 0.03) * (2 - layer)
        n = 40
        xs = np.linspace(-0.05 * w, 1.05 * w, n)
        ys = base - np.abs(np.cumsum(rng.normal(0, 1, n))) / np.sqrt(n) * amp * h
        col = mix((50, 90, 60), haze, t_haze)
        d.polygon(
            [(float(x), float(y)) for x, y in zip(xs, ys, strict=False)]
            + [(1.05 * w, horizon + 2), (-0.05 * w, horizon + 2)],
            fill=col,
        )

    # Ground below the horizon.
    ground_cols = {
        "street": ((120, 118, 114), (86, 84, 82)),
        "plaza": ((176, 164, 146), (140, 128, 112)),
        "desk": ((128, 124, 118), (96, 92, 88)),
        "river": ((110, 140, 160), (70, 96, 116)),
        "fields": ((150, 170, 90), (90, 130, 60)),
    }[foreground]
    g0, g1 = (jitter(rng, c, 6) for c in ground_cols)
    gh = h - horizon
    t = np.linspace(0, 1, gh, dtype=np.float32)[:, None, None]
    ground = g0[None, None, :] * (1 - t) + g1[None, None, :] * t
    if foreground == "river":
        # Reflected sky + ripples.
        ripple = np.sin(
            np.arange(gh, dtype=np.float32)[:, None] * (0.9 + 0.3 * rng.random())
            + rng.normal(0, 0.6, (1, w)).astype(np.float32)
        )
        ground = ground + (ripple[:, :, None] * 6.0)
    ground = np.broadcast_to(ground, (gh, w, 3))
    im.paste(Image.fromarray(np.clip(ground, 0, 255).astype(np.uint8), "RGB"), (0, horizon))
    d = ImageDraw.Draw(im)

    if foreground == "fields":
        for i in range(18):
            y = horizon + gh * (i / 18) ** 1.6
            d.line(
                (0, y, w, y + rng.normal(0, 0.01 * h)),
                fill=mix(g1, (40, 80, 30), 0.4),
                width=max(1, int(h * 0.002 * (1 + i / 4))),
            )

    # Buildings along the horizon (two rows: far, then near).
    if foreground != "fields":
        for row, (hmin, hmax, shift, t_haze) in enumerate(
            ((0.08, 0.22, 0.0, 0.35), (0.12, 0.34, 0.015, 0.1))
        ):
            x = -rng.uniform(0, 0.05) * w
            while x < w:
                bw = rng.uniform(0.05, 0.13) * w
                bh = rng.uniform(hmin, hmax) * h
                if rng.random() < 0.25 and row == 1:
                    x += bw * rng.uniform(0.2, 0.8)  # gap
                    continue
                bottom = horizon + shift * h
                top = bottom - bh
                col = mix(
                    jitter(rng, BUILDING_COLOURS[int(rng.integers(len(BUILDING_COLOURS)))], 10), haze, t_haze
                )
                col = mix(col, (0, 0, 0), 1 - light)
                d.rectangle((x, top, x + bw, bottom), fill=col)
                # Shaded side and roof line.
                d.rectangle((x + bw * 0.82, top, x + bw, bottom), fill=mix(col, (20, 20, 30), 0.25))
                d.rectangle(
                    (x - bw * 0.02, top - h * 0.006, x + bw * 1.02, top), fill=mix(col, (40, 40, 40), 0.45)
                )
                # Windows.
                lit = style in ("dusk", "sunset")
                cols = int(rng.integers(3, 7))
                rows = max(2, int(bh / (h * 0.03)))
                ww, wh = bw * 0.8 / cols * 0.55, bh / rows * 0.45
                for r in range(rows - 1):
                    for c in range(cols):
                        wx = x + bw * 0.06 + c * (bw * 0.76 / cols)
                        wy = top + h * 0.015 + r * (bh / rows)
                        if lit and rng.random() < 0.35:
                            wcol = (255, 214, 150)
                        else:
                            wcol = mix(mix(sky_top, (30, 40, 50), rng.uniform(0.3, 0.7)), col, 0.15)
                        d.rectangle((wx, wy, wx + ww, wy + wh), fill=wcol)
                x += bw * rng.uniform(0.98, 1.1)

    # Trees: clusters of dark green blobs.
    for _ in range(int(rng.integers(3, 9))):
        tx = rng.uniform(0, w)
        ty = horizon + rng.uniform(0.0, 0.06) * h
        size = rng.uniform(0.03, 0.08) * h
        d.rectangle((tx - size * 0.06, ty - size * 0.4, tx + size * 0.06, ty + size * 0.6), fill=(70, 52, 40))
        for _ in range(7):
            ox, oy = rng.normal(0, size * 0.35), rng.normal(-size * 0.7, size * 0.25)
            r = size * rng.uniform(0.35, 0.6)
            d.ellipse(
                (tx + ox - r, ty + oy - r, tx + ox + r, ty + oy + r),
                fill=mix(jitter(rng, (52, 96, 50), 12), (0, 0, 0), 1 - light),
            )

    # Street furniture / small far-away people.
    if foreground in ("street", "plaza"):
        for _ in range(int(rng.integers(4, 12))):
            px = rng.uniform(0, w)
            py = horizon + rng.uniform(0.05, 0.3) * gh
            ph = h * 0.012 * (1 + 4 * (py - horizon) / gh)
            d.ellipse((px - ph * 0.12, py - ph, px + ph * 0.12, py - ph * 0.76), fill=(60, 45, 40))
            d.rectangle(
                (px - ph * 0.16, py - ph * 0.76, px + ph * 0.16, py),
                fill=rgb(jitter(rng, SHIRT_COLOURS[int(rng.integers(len(SHIRT_COLOURS)))], 20)),
            )
        # Road markings.
        if foreground == "street":
            for i in range(8):
                y = horizon + gh * (0.3 + 0.09 * i)
                d.rectangle(
                    (w * 0.46 - i * w * 0.004, y, w * 0.54 + i * w * 0.004, y + gh * 0.02),
                    fill=(214, 212, 200),
                )

    # Main subject.
    if person is not None:
        draw_person(d, w, h, person, rng)

    # Foreground desk (a table edge with papers, like a photo taken from an office).
    if foreground == "desk":
        top = int(h * 0.82)
        wood0, wood1 = jitter(rng, (132, 92, 60), 8), jitter(rng, (92, 62, 40), 8)
        t = np.linspace(0, 1, h - top, dtype=np.float32)[:, None, None]
        grain = np.sin(np.linspace(0, 60, w, dtype=np.float32) + rng.normal(0, 0.3, w).astype(np.float32))
        desk = wood0 * (1 - t) + wood1 * t + grain[None, :, None] * 5.0
        im.paste(Image.fromarray(np.clip(desk, 0, 255).astype(np.uint8), "RGB"), (0, top))
        d = ImageDraw.Draw(im)
        d.rectangle((0, top, w, top + h * 0.01), fill=(70, 46, 30))
        for _ in range(3):
            px, py = rng.uniform(0.05, 0.8) * w, top + rng.uniform(0.04, 0.08) * h
            pw, ph = rng.uniform(0.12, 0.2) * w, rng.uniform(0.08, 0.12) * h
            d.polygon(
                [
                    (px, py),
                    (px + pw, py + rng.normal(0, ph * 0.1)),
                    (px + pw * 1.05, py + ph),
                    (px + pw * 0.05, py + ph),
                ],
                fill=(238, 236, 230),
            )
            for k in range(6):
                ly = py + ph * (0.15 + 0.12 * k)
                d.line(
                    (px + pw * 0.1, ly, px + pw * (0.6 + 0.3 * rng.random()), ly),
                    fill=(110, 110, 120),
                    width=max(1, int(h * 0.002)),
                )

    # Mottled low-frequency texture + vignette, then a mild blur.
    arr = np.asarray(im, np.float32)
    mott = rng.normal(0, 1, (h // 8 + 1, w // 8 + 1)).astype(np.float32)
    mott_im = Image.fromarray(np.clip(128 + mott * 40, 0, 255).astype(np.uint8), "L").resize(
        (w, h), Image.Resampling.BICUBIC
    )
    mott = (np.asarray(mott_im, np.float32) - 128) / 40 * 4.0
    vig = 1.0 - 0.22 * (((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2).astype(np.float32) / 2
    arr = (arr + mott[:, :, None]) * vig[:, :, None] * light
    im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    return im.filter(ImageFilter.GaussianBlur(0.6))


def draw_person(d: ImageDraw.ImageDraw, w: int, h: int, p: Person, rng: np.random.Generator) -> None:
    """A simple standing figure (head, hair, torso, arms, legs) with the face centred on (p.x, p.y)."""
    cx, cy = p.x * w, p.y * h
    hh = p.head * h  # head height
    hw = hh * 0.76
    skin = rgb(jitter(rng, SKIN_TONES[int(rng.integers(len(SKIN_TONES)))], 6))
    shirt = rgb(jitter(rng, SHIRT_COLOURS[int(rng.integers(len(SHIRT_COLOURS)))], 10))
    hair = (34, 28, 26)
    trousers = rgb(jitter(rng, (44, 48, 60), 8))
    shoulder_y = cy + hh * 0.85
    sw = hh * 1.05  # half shoulder width
    waist_y = cy + hh * 3.4
    foot_y = cy + hh * 7.0
    # Legs (cut by the frame for close-ups) and shoes.
    for side in (-1, 1):
        x0, x1 = cx + side * sw * 0.08, cx + side * sw * 0.62
        d.polygon(
            [
                (x0, waist_y - hh * 0.1),
                (x1, waist_y - hh * 0.1),
                (cx + side * sw * 0.5, foot_y),
                (cx + side * sw * 0.12, foot_y),
            ],
            fill=trousers,
        )
        d.ellipse(
            (
                cx + side * sw * 0.06 - (0 if side > 0 else sw * 0.5),
                foot_y - hh * 0.12,
                cx + side * sw * 0.06 + (sw * 0.5 if side > 0 else 0),
                foot_y + hh * 0.12,
            ),
            fill=(28, 24, 22),
        )
    # Arms hanging beside the torso, hands in skin tone.
    for side in (-1, 1):
        xa = cx + side * sw * 0.98
        d.polygon(
            [
                (xa - hh * 0.2, shoulder_y + hh * 0.2),
                (xa + hh * 0.2, shoulder_y + hh * 0.2),
                (xa + side * hh * 0.12 + hh * 0.14, waist_y + hh * 0.2),
                (xa + side * hh * 0.12 - hh * 0.14, waist_y + hh * 0.2),
            ],
            fill=mix(shirt, (0, 0, 0), 0.12),
        )
        hx, hy = xa + side * hh * 0.12, waist_y + hh * 0.35
        d.ellipse((hx - hh * 0.15, hy - hh * 0.2, hx + hh * 0.15, hy + hh * 0.2), fill=skin)
    # Torso: tapered to the waist, rounded shoulders.
    d.polygon(
        [
            (cx - sw * 0.55, shoulder_y - hh * 0.05),
            (cx + sw * 0.55, shoulder_y - hh * 0.05),
            (cx + sw, shoulder_y + hh * 0.35),
            (cx + sw * 0.78, waist_y),
            (cx - sw * 0.78, waist_y),
            (cx - sw, shoulder_y + hh * 0.35),
        ],
        fill=shirt,
    )
    d.ellipse((cx - sw * 1.08, shoulder_y - hh * 0.05, cx - sw * 0.3, shoulder_y + hh * 0.7), fill=shirt)
    d.ellipse((cx + sw * 0.3, shoulder_y - hh * 0.05, cx + sw * 1.08, shoulder_y + hh * 0.7), fill=shirt)
    d.rectangle(
        (cx - sw * 0.8, waist_y - hh * 0.12, cx + sw * 0.8, waist_y + hh * 0.02), fill=(40, 30, 26)
    )  # belt
    # Collar shading and neck.
    d.rectangle(
        (cx - hw * 0.22, cy + hh * 0.3, cx + hw * 0.22, shoulder_y + hh * 0.05),
        fill=mix(skin, (0, 0, 0), 0.15),
    )
    d.polygon(
        [
            (cx - hw * 0.3, shoulder_y - hh * 0.04),
            (cx + hw * 0.3, shoulder_y - hh * 0.04),
            (cx, shoulder_y + hh * 0.25),
        ],
        fill=mix(skin, (0, 0, 0), 0.1),
    )
    # Hair (behind), face, hair fringe.
    d.ellipse((cx - hw * 0.56, cy - hh * 0.58, cx + hw * 0.56, cy + hh * 0.35), fill=hair)
    d.ellipse((cx - hw / 2, cy - hh / 2, cx + hw / 2, cy + hh / 2), fill=skin)
    d.chord((cx - hw * 0.54, cy - hh * 0.6, cx + hw * 0.54, cy + hh * 0.1), 180, 360, fill=hair)
    # Ears, eyes, mouth: tiny features so a face detector-ish crop has something.
    d.ellipse(
        (cx - hw * 0.58, cy - hh * 0.05, cx - hw * 0.44, cy + hh * 0.15), fill=mix(skin, (0, 0, 0), 0.08)
    )
    d.ellipse(
        (cx + hw * 0.44, cy - hh * 0.05, cx + hw * 0.58, cy + hh * 0.15), fill=mix(skin, (0, 0, 0), 0.08)
    )
    for ex in (-0.2, 0.2):
        d.ellipse(
            (cx + hw * ex - hw * 0.07, cy - hh * 0.02, cx + hw * ex + hw * 0.07, cy + hh * 0.05),
            fill=(40, 32, 30),
        )
    d.line(
        (cx - hw * 0.15, cy + hh * 0.26, cx + hw * 0.15, cy + hh * 0.26),
        fill=(150, 80, 76),
        width=max(1, int(hh * 0.025)),
    )


# --------------------------------------------------------------------------- photo


_GRAIN_LUT = np.array(
    [round(NormalDist(0, GRAIN_SIGMA).inv_cdf((i + 0.5) / 256)) + 128 for i in range(256)], dtype=np.uint8
)


def add_grain(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Per-pixel gaussian film grain (mostly luminance, a little chroma)."""
    w, h = im.size
    luma = _GRAIN_LUT[rng.integers(0, 256, (h, w), dtype=np.uint8)]
    # Chroma noise is coarser and weaker in real sensors: quarter resolution, upscaled.
    chroma = [
        Image.fromarray(_GRAIN_LUT[rng.integers(0, 256, (h // 4, w // 4), dtype=np.uint8)], "L").resize(
            (w, h), Image.Resampling.BILINEAR
        )
        for _ in range(2)
    ]
    l_im = Image.fromarray(luma, "L")
    noise = Image.merge(
        "RGB", (ImageChops.add(l_im, chroma[0], 1.0, -128), l_im, ImageChops.add(l_im, chroma[1], 1.0, -128))
    )
    return ImageChops.add(im, noise, 1.0, -128)


def build_exif(photo: Photo) -> bytes | None:
    if photo.camera is None and not photo.gps and photo.orientation == 1:
        return None
    exif = Image.Exif()
    if photo.camera:
        exif[ExifTags.Base.Make], exif[ExifTags.Base.Model] = photo.camera
    exif[ExifTags.Base.Orientation] = photo.orientation
    if photo.date:
        exif[ExifTags.Base.DateTime] = photo.date
    ifd = exif.get_ifd(ExifTags.IFD.Exif)
    if photo.date:
        ifd[ExifTags.Base.DateTimeOriginal] = photo.date
        ifd[ExifTags.Base.DateTimeDigitized] = photo.date
    if photo.serial:
        ifd[ExifTags.Base.BodySerialNumber] = photo.serial
    ifd[ExifTags.Base.ColorSpace] = 1  # sRGB
    sw, sh = photo.stored_size
    ifd[ExifTags.Base.ExifImageWidth] = sw
    ifd[ExifTags.Base.ExifImageHeight] = sh
    if photo.gps:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
        gps[ExifTags.GPS.GPSVersionID] = b"\x02\x03\x00\x00"
        gps[ExifTags.GPS.GPSLatitudeRef] = "N" if GPS_LAT >= 0 else "S"
        gps[ExifTags.GPS.GPSLatitude] = dms(abs(GPS_LAT))
        gps[ExifTags.GPS.GPSLongitudeRef] = "E" if GPS_LON >= 0 else "W"
        gps[ExifTags.GPS.GPSLongitude] = dms(abs(GPS_LON))
    return exif.tobytes()


def dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    deg = int(value)
    minutes_f = (value - deg) * 60
    minutes = int(minutes_f)
    sec_x100 = round((minutes_f - minutes) * 60 * 100)
    return (IFDRational(deg, 1), IFDRational(minutes, 1), IFDRational(sec_x100, 100))


def srgb_icc() -> bytes:
    """Little CMS's built-in sRGB profile with a fixed creation date (keeps output byte-identical)."""
    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    # ICC header bytes 24..35: creation dateTimeNumber (6 x uint16 BE).
    # Profile ID (84..99) is left unset (zero).
    icc[24:36] = struct.pack(">6H", 2023, 9, 12, 0, 0, 0)
    return bytes(icc)


def make_photo(photo: Photo, path: Path) -> None:
    rng = np.random.default_rng(seed_for(photo.name))
    sw, sh = photo.width // DOWNSCALE, photo.height // DOWNSCALE
    small = draw_scene(sw, sh, photo.style, photo.foreground, photo.person, rng)
    if photo.orientation == 6:
        # EXIF orientation 6 means "rotate 90 deg clockwise to display", so store
        # the upright picture rotated 90 deg counter-clockwise.
        small = small.transpose(Image.Transpose.ROTATE_90)
    elif photo.orientation != 1:
        raise ValueError(f"unsupported orientation {photo.orientation}")
    big = small.resize(photo.stored_size, Image.Resampling.BICUBIC)
    big = add_grain(big, rng)
    kwargs = {"quality": photo.quality, "subsampling": "4:2:0"}
    exif = build_exif(photo)
    if exif:
        kwargs["exif"] = exif
    if photo.icc:
        kwargs["icc_profile"] = srgb_icc()
    atomic_save(path, lambda p: big.save(p, "JPEG", **kwargs))


# --------------------------------------------------------------------------- graphic


def make_graphic(path: Path) -> None:
    """Flat infographic card on a transparent background (drawn at 2x, downscaled)."""
    s = 2
    W, H = GRAPHIC_SIZE[0] * s, GRAPHIC_SIZE[1] * s
    im = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    m = 44 * s
    d.rounded_rectangle((m, m, W - m, H - m), radius=56 * s, fill=(16, 58, 94, 255))
    # Accent strip along the top of the card.
    d.rounded_rectangle((m, m, W - m, m + 96 * s), radius=56 * s, fill=(232, 84, 52, 255))
    d.rectangle((m, m + 48 * s, W - m, m + 96 * s), fill=(232, 84, 52, 255))

    def font(size: int, bold: bool = True) -> ImageFont.FreeTypeFont:
        return ImageFont.truetype(
            FONT_BOLD if bold else FONT_REGULAR, size * s, layout_engine=ImageFont.Layout.RAQM
        )

    d.text(
        (m + 60 * s, m + 50 * s),
        "THANH HÓA · CHUYỂN ĐỔI SỐ",
        font=font(32),
        fill=(255, 255, 255, 255),
        anchor="lm",
    )
    d.text((m + 52 * s, m + 120 * s), "100%", font=font(230), fill=(255, 206, 64, 255))
    lines = ["thủ tục hành chính", "được cập nhật trực tuyến"]
    for i, line in enumerate(lines):
        d.text((m + 64 * s, m + 420 * s + i * 72 * s), line, font=font(54), fill=(255, 255, 255, 255))
    d.text(
        (m + 64 * s, H - m - 70 * s),
        "Nguồn: số liệu minh hoạ",
        font=font(26, bold=False),
        fill=(170, 196, 220, 255),
    )

    # Bar chart on the right.
    bars = [("2020", 42), ("2021", 63), ("2022", 85), ("2023", 100)]
    bx0, by1 = 1000 * s, H - m - 110 * s
    bar_w, gap, max_h = 82 * s, 38 * s, 520 * s
    d.line((bx0 - 20 * s, by1, bx0 + len(bars) * (bar_w + gap), by1), fill=(170, 196, 220, 255), width=3 * s)
    for i, (label, pct) in enumerate(bars):
        x = bx0 + i * (bar_w + gap)
        top = by1 - max_h * pct / 100
        col = (255, 206, 64, 255) if pct == 100 else (86, 170, 220, 255)
        d.rounded_rectangle((x, top, x + bar_w, by1), radius=12 * s, fill=col)
        d.rectangle((x, by1 - 12 * s, x + bar_w, by1), fill=col)
        d.text(
            (x + bar_w / 2, top - 14 * s), f"{pct}%", font=font(30), fill=(255, 255, 255, 255), anchor="ms"
        )
        d.text(
            (x + bar_w / 2, by1 + 44 * s),
            label,
            font=font(28, bold=False),
            fill=(220, 232, 244, 255),
            anchor="ms",
        )

    out = im.resize(GRAPHIC_SIZE, Image.Resampling.LANCZOS)
    atomic_save(path, lambda p: out.save(p, "PNG", optimize=True))


# --------------------------------------------------------------------------- clip


def clip_is_valid(path: Path) -> bool:
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        return path.stat().st_size > 0
    r = subprocess.run(
        [
            ffprobe,
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if r.returncode != 0:
        return False
    try:
        s = json.loads(r.stdout)["streams"][0]
    except (ValueError, KeyError, IndexError):
        return False
    return (s.get("width"), s.get("height")) == CLIP_SIZE


def make_clip(ffmpeg: str, path: Path) -> None:
    w, h = CLIP_SIZE
    # Different tone per channel; quiet passage at 4-6 s, loud one at 8-10 s, short silence at the start.
    env = "if(lt(t,0.5),0,if(between(t,4,6),0.03,if(between(t,8,10),0.9,0.3)))"
    audio = (
        f"aevalsrc=exprs='{env}*sin(2*PI*440*t)|{env}*sin(2*PI*660*t)'"
        f":sample_rate=48000:channel_layout=stereo:duration={CLIP_SECONDS}"
    )
    video = f"testsrc2=size={w}x{h}:rate=30000/1001:duration={CLIP_SECONDS}"

    def write(tmp: Path) -> None:
        cmd = [
            ffmpeg,
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            video,
            "-f",
            "lavfi",
            "-i",
            audio,
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "23",
            "-pix_fmt",
            "yuv420p",
            "-profile:v",
            "high",
            "-g",
            "60",
            "-c:a",
            "aac",
            "-b:a",
            "160k",
            "-ar",
            "48000",
            "-ac",
            "2",
            "-t",
            str(CLIP_SECONDS),
            "-map_metadata",
            "-1",
            "-fflags",
            "+bitexact",
            "-flags:v",
            "+bitexact",
            "-flags:a",
            "+bitexact",
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
            str(tmp),
        ]
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"ffmpeg failed ({r.returncode}): {r.stderr.strip()}")

    atomic_save(path, write)


AUDIO_NAME = "phong-van.wav"
AUDIO_SECONDS = 15


def make_audio(ffmpeg: str, path: Path) -> None:
    """A field-recorder interview: mono 44.1 kHz 16-bit WAV, speech-like syllables at about
    -28 LUFS with pauses (a voice's pitch gliding under a syllable-rate envelope, plus room hiss)."""
    voice = (
        "0.25*(0.6+0.4*sin(2*PI*4.3*t))*if(lt(mod(t,3.1),2.6),1,0.02)"
        "*(sin(2*PI*(140+25*sin(2*PI*0.7*t))*t)+0.5*sin(2*PI*2*(140+25*sin(2*PI*0.7*t))*t)"
        "+0.25*sin(2*PI*3*(140+25*sin(2*PI*0.7*t))*t))"
    )
    audio = f"aevalsrc=exprs='{voice}':sample_rate=44100:channel_layout=mono:duration={AUDIO_SECONDS}"

    def write(tmp: Path) -> None:
        cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
               "-f", "lavfi", "-i", audio, "-f", "lavfi", "-i",
               f"anoisesrc=color=pink:amplitude=0.004:sample_rate=44100:duration={AUDIO_SECONDS}",
               "-filter_complex", "[0:a][1:a]amix=inputs=2:normalize=0[a]", "-map", "[a]",
               "-c:a", "pcm_s16le", "-fflags", "+bitexact", "-flags:a", "+bitexact", "-f", "wav", str(tmp)]
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"ffmpeg failed ({r.returncode}): {r.stderr.strip()}")

    atomic_save(path, write)


# --------------------------------------------------------------------------- main


def image_ok(path: Path, size: tuple[int, int]) -> bool:
    try:
        with Image.open(path) as im:
            return im.size == size
    except (OSError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true", help="regenerate files even if they already exist")
    ap.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default: {DEFAULT_OUT})"
    )
    args = ap.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    def report(name: str, dims: str, path: Path, status: str) -> None:
        print(f"{name:<22} {dims:>10}  {human_size(path.stat().st_size):>10}  {status}", flush=True)

    jobs: list[tuple[str, tuple[int, int], object]] = []
    for photo in PHOTOS:
        jobs.append((photo.name, photo.stored_size, lambda p, ph=photo: make_photo(ph, p)))
    jobs.append((GRAPHIC_NAME, GRAPHIC_SIZE, make_graphic))
    jobs.sort(key=lambda j: j[0])

    for name, size, fn in jobs:
        path = out / name
        dims = f"{size[0]}x{size[1]}"
        if not args.force and path.exists() and image_ok(path, size):
            report(name, dims, path, "skipped (exists)")
            continue
        t0 = time.perf_counter()
        fn(path)
        report(name, dims, path, f"written in {time.perf_counter() - t0:.2f} s")

    path = out / CLIP_NAME
    dims = f"{CLIP_SIZE[0]}x{CLIP_SIZE[1]}"
    ffmpeg = shutil.which("ffmpeg")
    if not args.force and path.exists() and clip_is_valid(path):
        report(CLIP_NAME, dims, path, "skipped (exists)")
    elif ffmpeg is None:
        print(
            f"error: ffmpeg not found on PATH; cannot make {CLIP_NAME} (photos were generated)",
            file=sys.stderr,
        )
        return 2
    else:
        t0 = time.perf_counter()
        try:
            make_clip(ffmpeg, path)
        except RuntimeError as e:
            print(f"error: {CLIP_NAME}: {e}", file=sys.stderr)
            return 1
        report(CLIP_NAME, dims, path, f"written in {time.perf_counter() - t0:.2f} s")

    path = out / AUDIO_NAME
    if not args.force and path.exists() and path.stat().st_size > 44100 * 2 * AUDIO_SECONDS:
        report(AUDIO_NAME, "mono", path, "skipped (exists)")
    elif ffmpeg is not None:
        t0 = time.perf_counter()
        try:
            make_audio(ffmpeg, path)
        except RuntimeError as e:
            print(f"error: {AUDIO_NAME}: {e}", file=sys.stderr)
            return 1
        report(AUDIO_NAME, "mono", path, f"written in {time.perf_counter() - t0:.2f} s")

    print(f"done in {time.perf_counter() - t_start:.1f} s -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
