"""Subtitles: read SRT or WebVTT, validate, NFC-normalise; write a WebVTT sidecar.

Cue text is kept as plain text: the simple styling tags subtitle files carry (``<i>``, ``<b>``,
``<u>``, ``<font ...>``, SRT's ``{\\an8}``) are removed; anything else, quotes, colons, percent
signs, braces and backslashes included, is text and is shown literally.

Subtitle files come from producers' tools and from strangers: the file size, the number of cues and
the length of every cue and line are capped (:class:`SubtitleLimits`) before any text is laid out,
and the file is checked when the story is loaded, not when the clip is rendered.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import InvalidStory


@dataclass(frozen=True)
class SubtitleLimits:
    """Caps on one subtitle file. A newsroom SRT for a ten-minute clip has a few hundred cues of
    one or two lines of about 42 characters; the defaults leave ten times that room."""

    max_bytes: int = 2 * 1024 * 1024
    """The file's size. 2 MiB holds some 15,000 ordinary cues."""
    max_cues: int = 5000
    """Cues in the file: a cue every two seconds for the longest clip accepted (three hours).
    Every cue is drawn as a picture for each size that burns subtitles."""
    max_cue_chars: int = 400
    """Characters in one cue as written (styling tags included): ten lines' worth."""
    max_line_chars: int = 200
    """Characters in one line of a cue: a line wider than the screen is cut when burned."""
    max_cue_lines: int = 8
    """Lines in one cue: at most the caption style's ``max_lines`` (3 by default) are shown."""


LIMITS = SubtitleLimits()

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


def _cue_body(lines: list[str], index: int, source: str, limits: SubtitleLimits) -> list[str]:
    """The text lines of the cue whose timing is on line ``index`` (0-based), within the limits."""
    body: list[str] = []
    chars = 0
    at = index + 1
    while at < len(lines) and lines[at].strip():
        line = lines[at]
        if len(line) > limits.max_line_chars:
            raise InvalidStory(f"{source}: line {at + 1}: the line is too long ({len(line)} characters;"
                               f" up to {limits.max_line_chars} are accepted): break it into lines")
        chars += len(line) + bool(body)
        if len(body) == limits.max_cue_lines or chars > limits.max_cue_chars:
            raise InvalidStory(f"{source}: line {index + 1}: the cue is too long (more than"
                               f" {limits.max_cue_lines} lines or {limits.max_cue_chars} characters):"
                               " split it into shorter cues")
        body.append(line)
        at += 1
    return body


def parse(text: str, source: str = "subtitles", limits: SubtitleLimits = LIMITS) -> list[Cue]:
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
        body = _cue_body(lines, index, source, limits)
        cue_text = _TAGS.sub("", "\n".join(body)).strip()
        if cue_text:
            if len(cues) == limits.max_cues:
                raise InvalidStory(f"{source}: line {index + 1}: too many cues (up to {limits.max_cues}"
                                   " are accepted): split the clip, or the subtitles")
            cues.append(Cue(start, end, cue_text))
        index += 1 + len(body)
    if not cues:
        raise InvalidStory(f"{source}: no subtitle cues found (expected SRT or WebVTT)")
    return sorted(cues, key=lambda c: c.start)


def load(path: Path, name: str, limits: SubtitleLimits = LIMITS) -> list[Cue]:
    """Read and parse a subtitle file; its size is checked before a byte of it is read."""
    data = b""
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size <= limits.max_bytes:
                data = handle.read(limits.max_bytes + 1)   # it may have grown since
    except OSError as exc:
        raise InvalidStory(f"{name}: cannot read the subtitle file ({exc.strerror})") from exc
    if size > limits.max_bytes or len(data) > limits.max_bytes:
        raise InvalidStory(f"{name}: the subtitle file is too large ({max(size, len(data)) / 1e6:.1f} MB;"
                           f" up to {limits.max_bytes / 1e6:.1f} MB is accepted)")
    try:
        return parse(data.decode("utf-8"), name, limits)
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
