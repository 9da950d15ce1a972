"""Subtitles: read SRT or WebVTT, validate, NFC-normalise; write a WebVTT sidecar.

Cue text is kept as plain text: the simple styling tags subtitle files carry (``<i>``, ``<b>``,
``<u>``, ``<font ...>``, SRT's ``{\\an8}``) are removed; anything else, quotes, colons, percent
signs, braces and backslashes included, is text and is shown literally.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import InvalidStory

MAX_BYTES = 2 * 1024 * 1024
MAX_CUES = 5000

_TIME = re.compile(r"(?:(\d{1,2}):)?(\d{2}):(\d{2})[,.](\d{3})")
_TIMING = re.compile(rf"^\s*({_TIME.pattern})\s*-->\s*({_TIME.pattern})(?:\s+.*)?$")
_TAGS = re.compile(r"</?(?:i|b|u|c(?:\.[\w.]+)?|v(?:\s[^>]*)?|font(?:\s[^>]*)?)>|\{\\an?\d\}", re.IGNORECASE)


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str
    """Plain text, NFC, lines joined with a newline."""


def _seconds(match: re.Match[str], offset: int) -> float:
    hours, minutes, seconds, millis = (match.group(offset + i) for i in range(1, 5))
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000


def parse(text: str, source: str = "subtitles") -> list[Cue]:
    """Cues of an SRT or WebVTT document; :class:`InvalidStory` names the line that is wrong."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff"))
    lines = text.split("\n")
    cues: list[Cue] = []
    index = 0
    if lines and lines[0].startswith("WEBVTT"):
        index = 1
    while index < len(lines):
        line = lines[index]
        match = _TIMING.match(line)
        if not match:
            index += 1
            continue
        start, end = _seconds(match, 1), _seconds(match, 6)
        if end <= start:
            raise InvalidStory(f"{source}: line {index + 1}: the cue ends before it starts")
        body = []
        index += 1
        while index < len(lines) and lines[index].strip():
            body.append(lines[index])
            index += 1
        cue_text = _TAGS.sub("", "\n".join(body)).strip()
        if cue_text:
            cues.append(Cue(start, end, cue_text))
        if len(cues) > MAX_CUES:
            raise InvalidStory(f"{source}: more than {MAX_CUES} cues")
    if not cues:
        raise InvalidStory(f"{source}: no subtitle cues found (expected SRT or WebVTT)")
    return sorted(cues, key=lambda c: c.start)


def load(path: Path, name: str) -> list[Cue]:
    data = path.read_bytes()
    if len(data) > MAX_BYTES:
        raise InvalidStory(f"{name}: the subtitle file is too large")
    try:
        return parse(data.decode("utf-8"), name)
    except UnicodeDecodeError as exc:
        raise InvalidStory(f"{name}: subtitles must be UTF-8 text") from exc


def stamp(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def webvtt(cues: list[Cue], language: str = "vi") -> str:
    """A WebVTT document for the web player (``<track kind="captions">``)."""
    out = ["WEBVTT", f"Language: {language}", ""]
    for number, cue in enumerate(cues, 1):
        out += [str(number), f"{stamp(cue.start)} --> {stamp(cue.end)}", _escape(cue.text), ""]
    return "\n".join(out)
