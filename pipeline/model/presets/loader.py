"""A preset as a whole (:class:`Preset`) and how preset files are found, read and validated."""

from __future__ import annotations

import hashlib
import os
import tomllib
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from pipeline.errors import InvalidPreset
from pipeline.model.presets.audio import AudioSpec
from pipeline.model.presets.common import NAME, CaptionStyle, Frozen, LogoSpec
from pipeline.model.presets.image import ImageGroup, ImageRenditionSpec
from pipeline.model.presets.video import VideoSpec
from pipeline.model.validation import describe


class Preset(Frozen):
    """A named, versioned set of rendition specs for one purpose."""

    name: str
    version: int = Field(ge=1)
    description: str = ""
    logo: LogoSpec | None = None
    caption: CaptionStyle = CaptionStyle()
    images: tuple[ImageRenditionSpec, ...] = ()
    video: VideoSpec | None = None
    audio: AudioSpec | None = None
    root: Path = Field(exclude=True)
    """The presets folder the file came from: logo and font paths are relative to it."""

    @property
    def label(self) -> str:
        """``name@version``, as used in keys and the manifest."""
        return f"{self.name}@{self.version}"

    def resolve(self, relative: str) -> Path:
        return (self.root / relative).resolve()

    @cached_property
    def logo_path(self) -> Path | None:
        return self.resolve(self.logo.file) if self.logo else None

    @cached_property
    def font_path(self) -> Path:
        return self.resolve(self.caption.font)

    @cached_property
    def graphics_hash(self) -> str:
        """sha256 over the logo and font files: part of every spec hash of this preset."""
        digest = hashlib.sha256()
        for path in (self.logo_path, self.font_path):
            if path is not None:
                digest.update(path.read_bytes())
        return digest.hexdigest()


class _PresetFile(Frozen):
    preset: dict[str, Any]
    logo: dict[str, Any] | None = None
    caption: dict[str, Any] | None = None
    image: dict[str, Any] | None = None
    video: dict[str, Any] | None = None
    audio: dict[str, Any] | None = None


def parse_preset(data: Mapping[str, Any], root: Path, source: str) -> Preset:
    """Validate one parsed preset document; ``source`` names it in errors."""
    try:
        doc = _PresetFile.model_validate(data)
        head = dict(doc.preset)
        name = head.get("name")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise InvalidPreset(f"{source}: preset.name: must be a short lower-case name like 'web'")
        images: list[dict[str, Any]] = []
        image_table = dict(doc.image or {})
        groups = image_table.pop("renditions", [])
        if image_table:
            raise InvalidPreset(f"{source}: image.{next(iter(image_table))}: unknown field")
        for index, group in enumerate(groups):
            try:
                images.extend(ImageGroup.model_validate(group).expand())
            except ValidationError as exc:
                raise InvalidPreset(describe(exc, f"{source}: image.renditions[{index}]")) from exc
        preset = Preset.model_validate({
            **head,
            "logo": doc.logo,
            "caption": doc.caption or {},
            "images": images,
            "video": doc.video,
            "audio": doc.audio,
            "root": root,
        })
    except ValidationError as exc:
        raise InvalidPreset(describe(exc, source)) from exc

    seen = set()
    for spec in preset.images:
        if not NAME.fullmatch(spec.name):
            raise InvalidPreset(
                f"{source}: image.renditions: name {spec.name!r} must be lower-case letters, digits, '-'")
        if (spec.name, spec.format) in seen:
            raise InvalidPreset(f"{source}: image.renditions: {spec.name} {spec.format} is declared twice")
        seen.add((spec.name, spec.format))
    for field_name, path in (("logo.file", preset.logo_path), ("caption.font", preset.font_path)):
        if path is not None and not path.is_file():
            raise InvalidPreset(f"{source}: {field_name}: {path} does not exist")
    if not preset.images and preset.video is None and preset.audio is None:
        raise InvalidPreset(f"{source}: declares no renditions")
    if preset.video is not None or preset.audio is not None:
        names = [o.name for o in (preset.video.outputs if preset.video else ())]
        names += [o.name for o in (preset.audio.outputs if preset.audio else ())]
        for name in names:
            if not NAME.fullmatch(name) or names.count(name) > 1:
                raise InvalidPreset(f"{source}: video.outputs: name {name!r} must be unique, lower-case"
                                    " letters, digits and '-'")
    return preset


def load_preset_file(path: Path) -> Preset:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidPreset(f"{path}: cannot read ({exc.strerror})") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidPreset(f"{path}: not valid TOML: {exc}") from exc
    preset = parse_preset(data, path.parent, str(path))
    if preset.name != path.stem:
        raise InvalidPreset(f"{path}: preset.name: {preset.name!r} must match the file name {path.stem!r}")
    return preset


LIMITS_FILE = "limits.toml"


def default_presets_dir() -> Path:
    """``$STORYMEDIA_PRESETS`` if set, else the ``presets/`` folder next to the package."""
    env = os.environ.get("STORYMEDIA_PRESETS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "presets"


def load_presets(directory: Path | None = None) -> dict[str, Preset]:
    """Load every ``*.toml`` preset in ``directory`` (``limits.toml`` excepted: the station's limits,
    :mod:`pipeline.ingest.limits`); any bad file stops the load."""
    directory = directory or default_presets_dir()
    files = sorted(f for f in directory.glob("*.toml") if f.name != LIMITS_FILE)
    if not files:
        raise InvalidPreset(f"{directory}: no preset files (*.toml) found")
    return {preset.name: preset for preset in map(load_preset_file, files)}
