"""Text on pictures: Vietnamese captions laid out with raqm (HarfBuzz), inside the safe area.

Pillow silently falls back to its BASIC layout without raqm, and BASIC misplaces Vietnamese
stacked diacritics when text arrives decomposed (NFD). So: text is NFC-normalised, the layout
engine is always RAQM, and :func:`require_raqm` refuses to start without it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from PIL import Image, ImageDraw, ImageFont, features

from pipeline.errors import RenderError
from pipeline.model.presets import CaptionStyle


def require_raqm() -> None:
    """Raise a clear error when Pillow has no raqm (complex text layout)."""
    if not features.check("raqm"):
        raise RenderError(
            "Pillow cannot lay out complex text: libraqm is missing. On Debian/Ubuntu install"
            " 'libraqm0 libfribidi0 libharfbuzz0b' (scripts/setup.sh does this).",
            code="raqm-missing")


@cache
def font(path: str, size: int) -> ImageFont.FreeTypeFont:
    require_raqm()
    return ImageFont.truetype(path, size, layout_engine=ImageFont.Layout.RAQM)


def wrap(text: str, face: ImageFont.FreeTypeFont, max_width: float, max_lines: int) -> list[str]:
    """Greedy word wrap; the last line ends in an ellipsis when the text does not fit."""
    words = unicodedata.normalize("NFC", text).split()
    lines: list[str] = []
    current = ""
    for word in words:
        trial = f"{current} {word}".strip()
        if face.getlength(trial) <= max_width or not current:
            current = trial
        else:
            lines.append(current)
            current = word
            if len(lines) > max_lines:      # the rest is cut anyway: stop measuring it
                break
    if current and len(lines) <= max_lines:
        lines.append(current)
    if len(lines) > max_lines:
        kept = lines[:max_lines]
        last = kept[-1].split(" ")
        # Whole words off the end until the ellipsis fits (a wrapped line holds few words).
        keep = _longest(len(last), lambda n: face.getlength(" ".join(last[:n]) + " …") <= max_width)
        kept[-1] = (" ".join(last[:max(keep, 1)]) + " …").strip()
        lines = kept
    # A single word wider than the line is shrunk by cutting characters.
    return [_fit(line, face, max_width) for line in lines]


def _longest(count: int, fits: Callable[[int], bool]) -> int:
    """The largest ``n`` in ``0..count`` for which ``fits(n)`` holds (0 when none but 0 does),
    by bisection: ``fits`` holds up to some ``n`` and not beyond (text grows as it lengthens).
    Measuring a text costs its length, so cutting one character per measurement was quadratic:
    an 8,000-character word took seconds per picture size."""
    low, high = 0, count
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def _fit(line: str, face: ImageFont.FreeTypeFont, max_width: float) -> str:
    """``line``, or as much of it as fits with an ellipsis after it."""
    if face.getlength(line) <= max_width:
        return line
    keep = _longest(len(line) - 1, lambda n: face.getlength(line[:n] + "…") <= max_width)
    while keep and unicodedata.combining(line[keep]):   # never strand a mark from its letter
        keep -= 1
    return line[:keep] + "…"


def fit_caption(caption: str, font_file: str, size: int, box_width: float, max_lines: int
                ) -> tuple[ImageFont.FreeTypeFont, list[str]]:
    """Font and lines for a caption: the preset size if the caption fits in ``max_lines``,
    else down to three quarters of it; only then is the last line cut with an ellipsis."""
    words = len(caption.split())
    smallest = max(10, round(size * 0.75))
    for trial in range(max(10, size), smallest - 1, -max(1, size // 16)):
        face = font(font_file, trial)
        pad = round(trial * 0.45)
        lines = wrap(caption, face, box_width - 2 * pad, max_lines + 1)
        if len(lines) <= max_lines and sum(len(line.split()) for line in lines) == words:
            return face, lines
    face = font(font_file, smallest)
    return face, wrap(caption, face, box_width - 2 * round(smallest * 0.45), max_lines)


def _rgba(colour: str, opacity: float = 1.0) -> tuple[int, int, int, int]:
    value = int(colour[1:], 16)
    return (value >> 16, (value >> 8) & 0xFF, value & 0xFF, round(255 * opacity))


def draw_caption_bar(img: Image.Image, caption: str, style: CaptionStyle, font_file: str,
                     language: str = "vi") -> Image.Image:
    """Return ``img`` with the caption in a bar along the bottom of the title-safe area.

    The bar runs the full width and reaches the bottom edge; the text sits inside the
    ``style.safe_area`` box, its size a fraction of the frame height.
    """
    if not caption:
        return img
    width, height = img.size
    margin_x = width * (1 - style.safe_area) / 2
    margin_y = height * (1 - style.safe_area) / 2
    face, lines = fit_caption(caption, font_file, round(height * style.size),
                              width - 2 * margin_x, style.max_lines)
    size = face.size
    pad = round(size * 0.45)
    ascent, descent = face.getmetrics()
    line_height = round((ascent + descent) * 1.12)
    text_height = line_height * len(lines)
    text_top = round(height - margin_y - pad - text_height)
    bar_top = text_top - pad

    base = img.convert("RGBA") if img.mode != "RGBA" else img.copy()
    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.rectangle((0, bar_top, width, height), fill=_rgba(style.bar_colour, style.bar_opacity))
    for index, line in enumerate(lines):
        draw.text((margin_x + pad, text_top + index * line_height), line, font=face,
                  fill=_rgba(style.text_colour), language=language)
    out = Image.alpha_composite(base, overlay)
    return out if img.mode == "RGBA" else out.convert(img.mode)


@dataclass(frozen=True)
class Graphic:
    """A rendered text graphic for video: an RGBA image and where its top-left corner goes."""

    image: Image.Image
    x: int
    y: int


def _panel(lines: list[tuple[str, ImageFont.FreeTypeFont]], pad: int, style: CaptionStyle,
           language: str, accent: int = 0) -> Image.Image:
    heights = [sum(face.getmetrics()) for _line, face in lines]
    width = max(round(face.getlength(line)) for line, face in lines) + 2 * pad + accent
    height = sum(round(h * 1.1) for h in heights) + 2 * pad
    panel = Image.new("RGBA", (width, height), _rgba(style.bar_colour, style.bar_opacity))
    draw = ImageDraw.Draw(panel)
    if accent:
        draw.rectangle((0, 0, accent - 1, height), fill=_rgba(style.text_colour))
    y = pad
    for (line, face), line_height in zip(lines, heights, strict=True):
        draw.text((pad + accent, y), line, font=face, fill=_rgba(style.text_colour), language=language)
        y += round(line_height * 1.1)
    return panel


def lower_third(name: str, title: str, frame: tuple[int, int], style: CaptionStyle, font_file: str,
                language: str = "vi") -> Graphic:
    """Name (large) and title (smaller) on a panel, bottom left inside the title-safe area."""
    width, height = frame
    margin_x, margin_y = round(width * (1 - style.safe_area) / 2), round(height * (1 - style.safe_area) / 2)
    big = font(font_file, max(12, round(height * 0.048)))
    small = font(font_file, max(10, round(height * 0.034)))
    room = width - 2 * margin_x - round(height * 0.05)
    def one_line(value: str) -> str:
        return " ".join(unicodedata.normalize("NFC", value).split())

    lines = [(_fit(one_line(name), big, room), big)]
    if title:
        lines.append((_fit(one_line(title), small, room), small))
    panel = _panel(lines, round(height * 0.016), style, language, accent=max(4, round(height * 0.008)))
    return Graphic(panel, margin_x, height - margin_y - panel.height - round(height * 0.06))


def subtitle(text: str, frame: tuple[int, int], style: CaptionStyle, font_file: str,
             language: str = "vi") -> Graphic:
    """One subtitle cue, centred at the bottom of the title-safe area, wrapped to fit."""
    width, height = frame
    margin_x, margin_y = round(width * (1 - style.safe_area) / 2), round(height * (1 - style.safe_area) / 2)
    face = _subtitle_face(frame, font_file)
    pad = round(face.size * 0.3)
    lines: list[str] = []
    for part in unicodedata.normalize("NFC", text).split("\n"):
        if len(lines) > style.max_lines:
            break
        lines += wrap(part, face, width - 2 * margin_x - 2 * pad, style.max_lines)
    panel = _panel([(line, face) for line in lines[: style.max_lines + 1]], pad, style, language)
    return Graphic(panel, (width - panel.width) // 2, height - margin_y - panel.height)


def _subtitle_face(frame: tuple[int, int], font_file: str) -> ImageFont.FreeTypeFont:
    return font(font_file, max(12, round(min(frame) * 0.05)))


def subtitle_top(frame: tuple[int, int], style: CaptionStyle, font_file: str) -> int:
    """The highest row any :func:`subtitle` panel can reach on ``frame`` (the most lines it draws):
    subtitles are burned from one image track whose area must hold every cue."""
    face = _subtitle_face(frame, font_file)
    pad = round(face.size * 0.3)
    margin_y = round(frame[1] * (1 - style.safe_area) / 2)
    tallest = (style.max_lines + 1) * round(sum(face.getmetrics()) * 1.1) + 2 * pad
    return max(0, frame[1] - margin_y - tallest)
