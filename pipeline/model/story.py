"""The story file: one article and the raw assets behind it.

A story is TOML (or JSON with the same shape)::

    [story]
    id = "tp-thanh-hoa-tang-cuong-ky-cuong-2023-09-12"
    title = "..."
    byline = "Đình Hà – Đức Anh"
    published = 2023-09-12T21:15:00+07:00
    source = "Phòng chống tham nhũng"
    language = "vi"
    copyright = "Thanh Hoa Radio and Television"
    presets = ["web", "broadcast", "social"]

    [[assets]]
    file = "media/anh-05.jpg"
    caption = "..."
    credit = "Đình Hà"
    focus = [0.5, 0.35]

Everything is validated when loaded; every text is NFC-normalised; an error names the file, the
field and what is wrong. Asset files are resolved against the story file's folder and must stay
inside it; they are found on disk whatever Unicode normalisation their names were written in
(see :func:`locate`). Subtitle files are parsed and checked when the story is loaded.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from pipeline.errors import InvalidStory
from pipeline.model import subtitles
from pipeline.model.validation import describe

SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,127}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_NOT_TEXT = re.compile("[\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff"
                       + "".join(f"{chr(plane + 0xFFFE)}-{chr(plane + 0xFFFF)}"
                                 for plane in range(0x10000, 0x110000, 0x10000)) + "]")
"""Code points that are not characters: UTF-16 surrogate halves (only JSON's ``\\ud800`` escapes
make them) and the Unicode noncharacters U+FDD0..U+FDEF and U+xxFFFE/U+xxFFFF of every plane.
XML 1.0 forbids the surrogates, U+FFFE and U+FFFF and discourages the rest; strict XMP readers
reject all of them, and story text goes into every photo's XMP."""


def refused_character(text: str) -> str | None:
    """Why ``text`` cannot be story text (a control character or a code point that is not a
    character, which XMP cannot carry), or None when it can. Tab, CR and LF are allowed."""
    control = _CONTROL.search(text)
    if control:
        return f"contains control characters (U+{ord(control.group()):04X}); remove them"
    other = _NOT_TEXT.search(text)
    if other:
        code = ord(other.group())
        what = "half of a UTF-16 surrogate pair" if 0xD800 <= code <= 0xDFFF else "a Unicode noncharacter"
        return (f"contains U+{code:04X} ({what}, not a character: photo metadata cannot carry it);"
                " remove it")
    return None


def _text_input(value: object) -> object:
    """Refuse what cannot be text before pydantic reads the string (it cannot hold a surrogate)."""
    if isinstance(value, str) and (reason := refused_character(value)):
        raise ValueError(reason)
    return value


def nfc(text: str) -> str:
    """NFC-normalise and trim ``text``; refuse control characters and noncharacters."""
    text = unicodedata.normalize("NFC", text).strip()
    reason = refused_character(text)
    if reason:
        raise ValueError(reason)
    return text


Text = Annotated[str, BeforeValidator(_text_input), AfterValidator(nfc)]
NonEmptyText = Annotated[str, BeforeValidator(_text_input), AfterValidator(nfc), Field(min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class LowerThird(_Strict):
    """Name and title shown over a clip from ``start`` to ``end`` seconds."""

    name: NonEmptyText = Field(max_length=80)
    title: Text = Field(default="", max_length=120)
    start: float = Field(default=0.0, ge=0)
    end: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> LowerThird:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class Asset(_Strict):
    """One raw file behind the story, with the words that travel with it."""

    file: NonEmptyText
    caption: Text = Field(default="", max_length=2000)
    credit: Text = Field(default="", max_length=200)
    copyright: Text | None = Field(default=None, max_length=200)
    focus: tuple[float, float] = (0.5, 0.5)
    presets: tuple[NonEmptyText, ...] | None = None
    lower_third: LowerThird | None = None
    subtitles: Text | None = None
    branded: bool = False
    """True when the source already carries a logo: no station logo is added."""
    poster_time: float | None = Field(default=None, ge=0)
    """Clips: the second the poster frame is taken from (default: 10 % in)."""
    _written: dict[str, str] = PrivateAttr(default_factory=dict)
    """``file`` and ``subtitles`` as the story spelled them, before NFC (see :func:`locate`)."""

    @model_validator(mode="wrap")
    @classmethod
    def _keep_names_as_written(cls, data: Any, handler: ModelWrapValidatorHandler[Asset]) -> Asset:
        asset = handler(data)
        if isinstance(data, dict):
            asset._written.update({key: data[key].strip() for key in ("file", "subtitles")
                                   if isinstance(data.get(key), str)})
        return asset

    @property
    def file_as_written(self) -> str:
        """``file`` spelled as in the story file: the first spelling looked for on disk."""
        return self._written.get("file", self.file)

    @property
    def subtitles_as_written(self) -> str | None:
        return self._written.get("subtitles", self.subtitles) if self.subtitles is not None else None

    @field_validator("focus")
    @classmethod
    def _focus_in_frame(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= v <= 1.0 for v in value):
            raise ValueError("both numbers must be between 0 and 1 (fractions of width and height)")
        return value

    @field_validator("file", "subtitles")
    @classmethod
    def _relative(cls, value: str | None) -> str | None:
        if value is not None and (value.startswith("/") or "\\" in value or ".." in value.split("/")):
            raise ValueError("must be a path relative to the story file, inside its folder")
        return value


class StoryInfo(_Strict):
    """The article the assets belong to."""

    id: Annotated[str, BeforeValidator(_text_input)]
    title: NonEmptyText = Field(max_length=500)
    byline: Text = Field(default="", max_length=200)
    published: datetime
    source: Text = Field(default="", max_length=200)
    language: Annotated[str, BeforeValidator(_text_input)] = Field(
        default="vi", pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
    copyright: Text = Field(default="", max_length=200)
    presets: tuple[NonEmptyText, ...] = ("web", "broadcast", "social")
    breaking: bool = False
    """Breaking news: served by the fast-lane queues of the cluster."""

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not SLUG.fullmatch(value):
            raise ValueError(
                "must be a slug: lower-case letters, digits and '-', starting with a letter or"
                " digit, at most 128 characters"
            )
        return value

    @field_validator("published")
    @classmethod
    def _zoned(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("needs a time zone, e.g. 2023-09-12T21:15:00+07:00")
        return value


class Story(_Strict):
    """A validated story: the article and its assets in order."""

    story: StoryInfo
    assets: tuple[Asset, ...] = Field(min_length=1, max_length=500)

    def asset_presets(self, asset: Asset) -> tuple[str, ...]:
        """The presets an asset is rendered with: its own override, else the story's."""
        return asset.presets if asset.presets is not None else self.story.presets


def parse_story(data: dict[str, Any], source: str = "<story>") -> Story:
    """Validate an already-parsed story document. ``source`` names it in errors."""
    try:
        return Story.model_validate(data)
    except ValidationError as exc:
        # A field name may hold a lone surrogate (JSON escapes one): keep the reason printable.
        reason = describe(exc, source).encode("utf-8", "backslashreplace").decode("utf-8")
        raise InvalidStory(reason) from exc


def _spellings(folder: Path, name: str) -> Iterator[str]:
    """``name`` as written, in NFC, in NFD, then any entry of ``folder`` equal to it under NFC
    (a name in neither form, e.g. written by a tool that composes only some marks)."""
    tried = list(dict.fromkeys([name, unicodedata.normalize("NFC", name),
                                unicodedata.normalize("NFD", name)]))
    yield from tried
    wanted = unicodedata.normalize("NFC", name)
    try:
        entries = sorted(os.listdir(folder))
    except (OSError, ValueError):
        return
    yield from (entry for entry in entries
                if entry not in tried and unicodedata.normalize("NFC", entry) == wanted)


def locate(root: Path, rel: str) -> Path | None:
    """The file that ``rel`` (a relative POSIX path) names under ``root``, or None if none does.

    Each component is looked for as written, then in NFC, then in NFD, then by comparing NFC
    forms: macOS and phones write names decomposed (NFD) while a story typed elsewhere, and every
    name once the story is loaded, is composed (NFC); byte-wise they differ. ``..`` and absolute
    paths name nothing. The path is not resolved: a symbolic link in it may point out of
    ``root``, which the caller checks.
    """
    parts = PurePosixPath(rel).parts
    if not parts or rel.startswith("/") or ".." in parts:
        return None

    def walk(folder: Path, rest: tuple[str, ...]) -> Path | None:
        last = len(rest) == 1
        for spelling in _spellings(folder, rest[0]):
            candidate = folder / spelling
            if os.path.lexists(candidate) if last else candidate.is_dir():
                found = candidate if last else walk(candidate, rest[1:])
                if found is not None:
                    return found
        return None

    return walk(root, parts)


def load_story(path: Path, known_presets: Iterable[str] | None = None,
               subtitle_limits: subtitles.SubtitleLimits = subtitles.LIMITS) -> Story:
    """Read, validate and check a story file.

    Checks that every asset file (and subtitle file) exists inside the story's folder, that every
    subtitle file parses within the limits of :mod:`pipeline.model.subtitles` and, when
    ``known_presets`` is given, that every preset named exists.
    """
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidStory(f"{name}: cannot read the story file ({exc.strerror})") from exc
    try:
        text = raw.decode("utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise InvalidStory(f"{name}: not UTF-8 text") from exc
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise InvalidStory(f"{name}: not valid {kind}: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidStory(f"{name}: the top level must be a table with [story] and [[assets]]")
    story = parse_story(data, name)

    root = path.resolve().parent
    problems = []
    known = set(known_presets) if known_presets is not None else None
    for index, asset in enumerate(story.assets):
        for field_name, rel, written in (("file", asset.file, asset.file_as_written),
                                         ("subtitles", asset.subtitles, asset.subtitles_as_written)):
            if rel is None or written is None:
                continue
            where = f"{name}: assets[{index}].{field_name}: {rel}"
            found = locate(root, written)
            target = found.resolve() if found is not None else None
            if target is not None and not target.is_relative_to(root):
                problems.append(f"{where} leaves the story folder")
            elif target is None or not target.is_file():
                problems.append(f"{where} does not exist")
            elif field_name == "subtitles":
                try:
                    subtitles.load(target, where, subtitle_limits)
                except InvalidStory as exc:
                    problems.append(str(exc))
        if known is not None:
            for preset in story.asset_presets(asset):
                if preset not in known:
                    where = "presets" if asset.presets is not None else "(story.presets)"
                    problems.append(
                        f"{name}: assets[{index}].{where}: unknown preset {preset!r}"
                        f" (known: {', '.join(sorted(known))})"
                    )
    if problems:
        raise InvalidStory("\n".join(dict.fromkeys(problems)))
    return story
