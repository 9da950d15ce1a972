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
inside it.
"""

from __future__ import annotations

import json
import re
import tomllib
import unicodedata
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pipeline.errors import InvalidStory
from pipeline.validation import describe

SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,127}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def nfc(text: str) -> str:
    """NFC-normalise and trim ``text``; refuse control characters."""
    text = unicodedata.normalize("NFC", text).strip()
    if _CONTROL.search(text):
        raise ValueError("contains control characters")
    return text


Text = Annotated[str, AfterValidator(nfc)]
NonEmptyText = Annotated[str, AfterValidator(nfc), Field(min_length=1)]


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

    id: str
    title: NonEmptyText = Field(max_length=500)
    byline: Text = Field(default="", max_length=200)
    published: datetime
    source: Text = Field(default="", max_length=200)
    language: str = Field(default="vi", pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
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
        raise InvalidStory(describe(exc, source)) from exc


def load_story(path: Path, known_presets: Iterable[str] | None = None) -> Story:
    """Read, validate and check a story file.

    Checks that every asset file (and subtitle file) exists inside the story's folder and, when
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
        for field_name, rel in (("file", asset.file), ("subtitles", asset.subtitles)):
            if rel is None:
                continue
            target = (root / rel).resolve()
            if not target.is_relative_to(root):
                problems.append(f"{name}: assets[{index}].{field_name}: {rel} leaves the story folder")
            elif not target.is_file():
                problems.append(f"{name}: assets[{index}].{field_name}: {rel} does not exist")
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


def asset_path(story_file: Path, asset: Asset) -> Path:
    """The absolute path of an asset's raw file."""
    return (story_file.resolve().parent / asset.file).resolve()
