#!/usr/bin/env python3
"""Draw the sample station logo (presets/station/logo.png).

This is storymedia's own placeholder mark: a rounded-square emblem with a
broadcast-wave symbol, the wordmark "STORYMEDIA" and "TV · RADIO". It does not
depict any real broadcaster. Light shapes with a dark outline and a soft drop
shadow, so it reads on bright and dark pictures alike.

Usage: python presets/station/make_logo.py [--out PATH]
Needs Pillow and the DejaVu fonts (/usr/share/fonts/truetype/dejavu/).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

HERE = Path(__file__).resolve().parent
FONT_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"

SIZE = (1200, 360)  # final size
SS = 2  # supersampling factor

WHITE = (255, 255, 255, 255)
LIGHT = (232, 238, 244, 255)
OUTLINE = (18, 28, 44, 200)
ACCENT = (232, 84, 52, 255)  # emblem symbol colour
ACCENT_DARK = (22, 58, 94, 255)


def draw_logo() -> Image.Image:
    W, H = SIZE[0] * SS, SIZE[1] * SS
    s = SS

    # 1) Light shapes (emblem body + text) on a transparent canvas.
    fg = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    d = ImageDraw.Draw(fg)

    pad = 30 * s
    em = H - 2 * pad  # emblem side
    ex0, ey0 = pad, pad
    ex1, ey1 = ex0 + em, ey0 + em
    d.rounded_rectangle((ex0, ey0, ex1, ey1), radius=int(em * 0.24), fill=WHITE, outline=OUTLINE, width=4 * s)

    # Broadcast symbol inside the emblem: a mast dot with three arcs on each side.
    cx, cy = (ex0 + ex1) / 2, ey0 + em * 0.56
    dot = em * 0.075
    d.ellipse((cx - dot, cy - dot, cx + dot, cy + dot), fill=ACCENT)
    # Mast: a slim triangle from the dot down to a base.
    base_y = ey0 + em * 0.84
    d.polygon(
        [
            (cx - dot * 0.45, cy + dot * 0.6),
            (cx + dot * 0.45, cy + dot * 0.6),
            (cx + em * 0.09, base_y),
            (cx - em * 0.09, base_y),
        ],
        fill=ACCENT_DARK,
    )
    d.rounded_rectangle(
        (cx - em * 0.16, base_y - 2 * s, cx + em * 0.16, base_y + em * 0.045),
        radius=int(em * 0.02),
        fill=ACCENT_DARK,
    )
    arc_w = int(em * 0.038)
    for i, r in enumerate((0.17, 0.27, 0.37)):
        rr = em * r
        box = (cx - rr, cy - rr, cx + rr, cy + rr)
        col = ACCENT if i < 2 else ACCENT_DARK
        d.arc(box, 200, 250, fill=col, width=arc_w)  # left waves
        d.arc(box, 290, 340, fill=col, width=arc_w)  # right waves

    # Wordmark, sized to fit the space right of the emblem.
    tx = ex1 + 44 * s
    avail = W - tx - pad
    size = 200 * s
    word = "STORYMEDIA"
    while True:
        font = ImageFont.truetype(FONT_BOLD, size)
        if d.textlength(word, font=font) <= avail or size < 20:
            break
        size -= 2
    stroke = max(2, size // 40)
    d.text(
        (tx, ey0 + em * 0.52),
        word,
        font=font,
        fill=WHITE,
        anchor="ls",
        stroke_width=stroke,
        stroke_fill=OUTLINE,
    )
    # A thin accent rule and the secondary line.
    rule_y = ey0 + em * 0.63
    d.rounded_rectangle(
        (tx + 4 * s, rule_y, tx + 4 * s + em * 0.55, rule_y + 10 * s),
        radius=5 * s,
        fill=ACCENT,
        outline=OUTLINE,
        width=2 * s,
    )
    small = ImageFont.truetype(FONT_BOLD, int(size * 0.46))
    d.text(
        (tx + 4 * s, ey0 + em * 0.92),
        "TV · RADIO",
        font=small,
        fill=LIGHT,
        anchor="ls",
        stroke_width=max(2, stroke * 2 // 3),
        stroke_fill=OUTLINE,
    )

    # 2) Soft drop shadow from the alpha of everything drawn.
    alpha = fg.getchannel("A")
    shadow_a = ImageChops.offset(alpha, 4 * s, 5 * s).filter(ImageFilter.GaussianBlur(4 * s))
    shadow_a = shadow_a.point(lambda v: v * 55 // 100)
    shadow = Image.new("RGBA", (W, H), (0, 0, 0, 255))
    shadow.putalpha(shadow_a)

    out = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    out.alpha_composite(shadow)
    out.alpha_composite(fg)
    out = out.resize(SIZE, Image.Resampling.LANCZOS)
    # Anti-aliased text edges and the soft shadow make a ~120 kB PNG; reducing to
    # 256 distinct RGBA values (no dithering, visually identical) and storing it
    # back as RGBA lets deflate bring it under ~60 kB.
    return out.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).convert("RGBA")


def main() -> None:
    ap = argparse.ArgumentParser(description="Draw the sample station logo.")
    ap.add_argument("--out", type=Path, default=HERE / "logo.png", help="output PNG (default: %(default)s)")
    args = ap.parse_args()
    logo = draw_logo()
    logo.save(args.out, "PNG", optimize=True)
    print(f"{args.out}: {logo.size[0]}x{logo.size[1]} RGBA, {args.out.stat().st_size / 1000:.1f} kB")


if __name__ == "__main__":
    main()
