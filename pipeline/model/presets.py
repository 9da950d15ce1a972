"""Presets: named, versioned rendition specs, declared as data in ``presets/*.toml``.

A preset file is parsed into frozen objects when loaded; an unknown key, a bad size, format or
colour fails at load time with the file and the field named, never in the middle of a render.
See ``presets/README.md`` for every field.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.errors import InvalidPreset
from pipeline.model.validation import describe

ImageFormat = Literal["jpeg", "webp", "avif", "png"]
Position = Literal["top-left", "top-right", "bottom-left", "bottom-right"]

_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
DEFAULT_QUALITY = {"jpeg": 82, "webp": 80, "avif": 60, "png": 100}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LogoSpec(_Frozen):
    """Where and how the station logo goes on every rendition of a preset."""

    file: str = "station/logo.png"
    """Logo image (PNG with alpha), relative to the presets folder."""
    position: Position = "top-right"
    width: float = Field(default=0.12, gt=0, le=0.5)
    """Logo width as a fraction of the frame width."""
    opacity: float = Field(default=0.9, gt=0, le=1)
    margin: float = Field(default=0.05, ge=0, le=0.2)
    """Distance from the frame edges as a fraction of the frame width and height (0.05 keeps it
    inside the 90 % title-safe area)."""


class CaptionStyle(_Frozen):
    """How captions are burned in (social renditions)."""

    font: str = "fonts/DejaVuSans-Bold.ttf"
    """A font covering Vietnamese, relative to the presets folder."""
    size: float = Field(default=0.038, gt=0, le=0.2)
    """Font size as a fraction of the frame height."""
    max_lines: int = Field(default=3, ge=1, le=8)
    safe_area: float = Field(default=0.9, gt=0.5, le=1)
    """Text stays inside this centred fraction of the frame (title-safe)."""
    text_colour: str = "#FFFFFF"
    bar_colour: str = "#000000"
    bar_opacity: float = Field(default=0.62, ge=0, le=1)

    @field_validator("text_colour", "bar_colour")
    @classmethod
    def _colour(cls, value: str) -> str:
        if not _COLOUR.fullmatch(value):
            raise ValueError("must be a colour like #1A2B3C")
        return value.upper()


class ImageRenditionSpec(_Frozen):
    """One still-image output: a size, a way to get there, and a format."""

    name: str
    format: ImageFormat
    mode: Literal["width", "fill"]
    """``width``: scale to ``width`` keeping the aspect ratio, never upscaled.
    ``fill``: exactly ``width`` x ``height``, cropped around the focal point; a source that would
    lose too much (see ``blur_fill_below``) or is smaller than the frame is placed over a blurred
    fill of itself instead."""
    width: int = Field(ge=16, le=8192)
    height: int | None = Field(default=None, ge=16, le=8192)
    quality: int = Field(ge=1, le=100)
    effort: int = Field(default=4, ge=0, le=9)
    """Encoder effort: WebP ``method`` (0-6), AVIF speed is ``10 - effort`` (speed >= 8 by default)."""
    subsampling: Literal["4:2:0", "4:4:4"] = "4:2:0"
    progressive: bool = True
    caption: bool = False
    """Burn the asset caption into a bar at the bottom, inside the title-safe area."""
    blur_fill_below: float = Field(default=0.6, ge=0, le=1)
    background: str = "#FFFFFF"
    """Colour under transparent sources for formats without alpha."""
    logo: bool = True

    @model_validator(mode="after")
    def _shape(self) -> ImageRenditionSpec:
        if self.mode == "fill" and self.height is None:
            raise ValueError("mode 'fill' needs both width and height")
        if self.mode == "width" and self.height is not None:
            raise ValueError("mode 'width' takes a width only (height follows the source)")
        if self.format == "avif" and self.effort < 2:
            raise ValueError("AVIF needs effort >= 2 (encoder speed <= 8 is far too slow here)")
        return self

    @property
    def extension(self) -> str:
        return {"jpeg": "jpg", "webp": "webp", "avif": "avif", "png": "png"}[self.format]

    @property
    def mime(self) -> str:
        return f"image/{self.format}"


class _ImageGroup(_Frozen):
    """A group in the TOML that expands into one spec per width and format."""

    name: str = "w{width}"
    mode: Literal["width", "fill"] = "width"
    width: int | None = None
    widths: tuple[int, ...] | None = None
    height: int | None = None
    formats: tuple[ImageFormat, ...] = Field(default=("jpeg",), min_length=1)
    quality: dict[str, int] | int | None = None
    effort: int = 4
    subsampling: Literal["4:2:0", "4:4:4"] = "4:2:0"
    progressive: bool = True
    caption: bool = False
    blur_fill_below: float = 0.6
    background: str = "#FFFFFF"
    logo: bool = True

    @model_validator(mode="after")
    def _one_width(self) -> _ImageGroup:
        if (self.width is None) == (self.widths is None):
            raise ValueError("give either 'width' or 'widths'")
        if self.widths is not None and len(set(self.widths)) != len(self.widths):
            raise ValueError("widths must not repeat")
        return self

    def expand(self) -> list[dict[str, Any]]:
        widths = self.widths if self.widths is not None else (self.width,)
        out = []
        for width in widths:
            for fmt in self.formats:
                if isinstance(self.quality, int):
                    quality = self.quality
                else:
                    quality = (self.quality or {}).get(fmt, DEFAULT_QUALITY[fmt])
                out.append({
                    "name": self.name.format(width=width, height=self.height),
                    "format": fmt, "mode": self.mode, "width": width, "height": self.height,
                    "quality": quality, "effort": self.effort, "subsampling": self.subsampling,
                    "progressive": self.progressive, "caption": self.caption,
                    "blur_fill_below": self.blur_fill_below, "background": self.background,
                    "logo": self.logo,
                })
        return out


class Loudness(_Frozen):
    """EBU R128 loudness target: two-pass ``loudnorm`` (linear) to these values."""

    integrated: float = Field(ge=-36, le=-5)
    """Integrated loudness in LUFS (-23 for air, -16 for the web)."""
    true_peak: float = Field(default=-1.0, ge=-9, le=0)
    """Maximum true peak in dBTP."""
    lra: float = Field(default=11.0, ge=1, le=20)
    """Loudness range target in LU."""


class Mp4Output(_Frozen):
    """H.264 + AAC in MP4 (``+faststart``), scaled to fit ``width`` x ``height``."""

    type: Literal["mp4"]
    name: str
    width: int = Field(ge=64, le=3840)
    height: int = Field(ge=64, le=3840)
    crf: int = Field(default=23, ge=10, le=40)
    maxrate: int = Field(default=6000, ge=100, le=100_000)
    """Peak video bitrate cap in kb/s (VBV buffer is twice that)."""
    x264_preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] = "veryfast"
    profile: Literal["main", "high"] = "high"
    level: str = "4.1"
    audio_bitrate: int = Field(default=128, ge=32, le=320)
    from_rung: str | None = None
    """Name of an HLS rung of the same preset to remux into this MP4 instead of encoding again
    (one encode serves both; ``crf``/``maxrate`` then come from the rung)."""


class HlsRung(_Frozen):
    """One rung of an HLS ladder: a box to fit, an average and a peak bitrate (kb/s)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,15}$")
    width: int = Field(ge=64, le=3840)
    height: int = Field(ge=64, le=3840)
    bitrate: int = Field(ge=100, le=50_000)
    maxrate: int = Field(ge=100, le=60_000)

    @model_validator(mode="after")
    def _peak(self) -> HlsRung:
        if self.maxrate < self.bitrate:
            raise ValueError("maxrate must be at least bitrate")
        return self


class HlsOutput(_Frozen):
    """An HLS ladder in fMP4 (CMAF): aligned GOPs, media and I-frame playlists, a master."""

    type: Literal["hls"]
    name: str = "hls"
    rungs: tuple[HlsRung, ...] = Field(min_length=1)
    segment_seconds: float = Field(default=6.0, ge=1, le=12)
    x264_preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] = "veryfast"
    audio_bitrate: int = Field(default=128, ge=32, le=320)


class XdcamOutput(_Frozen):
    """XDCAM HD422 in MXF OP1a: MPEG-2 4:2:2P@HL 50 Mb/s CBR, 1080i50 TFF, PCM 24-bit tracks."""

    type: Literal["xdcam"]
    name: str
    bitrate: int = Field(default=50, ge=30, le=50)
    """Video bitrate in Mb/s."""
    audio_tracks: Literal[2, 4, 8] = 4
    """Mono PCM tracks: 1-2 carry the programme stereo, the rest repeat it."""
    timecode: str = Field(default="10:00:00:00", pattern=r"^\d\d:\d\d:\d\d:\d\d$")


class PosterOutput(_Frozen):
    """One JPEG frame: at the asset's focus time, else at ``at`` of the duration."""

    type: Literal["poster"]
    name: str = "poster"
    width: int = Field(default=1280, ge=64, le=3840)
    at: float = Field(default=0.1, ge=0, le=1)
    quality: int = Field(default=85, ge=1, le=100)


class SpriteOutput(_Frozen):
    """Scrub thumbnails: one frame every ``interval`` seconds, tiled into JPEG sheets, with a
    WebVTT index (``sheet.jpg#xywh=x,y,w,h`` per time range) for the web player."""

    type: Literal["sprite"]
    name: str = "sprite"
    interval: float = Field(default=2.0, ge=0.5, le=60)
    width: int = Field(default=160, ge=32, le=640)
    columns: int = Field(default=10, ge=1, le=20)
    rows: int = Field(default=10, ge=1, le=20)


class WebVttOutput(_Frozen):
    """The asset's subtitles as a WebVTT sidecar for the web player (only when it has some)."""

    type: Literal["webvtt"]
    name: str = "captions"


VideoOutput = Annotated[Mp4Output | HlsOutput | XdcamOutput | PosterOutput | SpriteOutput | WebVttOutput,
                        Field(discriminator="type")]


class VideoSpec(_Frozen):
    """How a preset turns clips into renditions."""

    frame: Literal["fit", "fill"] = "fit"
    """``fit``: keep the aspect ratio inside each output's box (turned for vertical sources);
    ``fill``: exactly the output size, a mismatched source pillarboxed over a blurred fill."""
    frame_rate: Literal["natural", "pal-interlaced"] = "natural"
    """``natural``: keep the source rate, halving it above ``max_fps``; ``pal-interlaced``:
    1080i50 top field first (25 and 50 Hz sources keep their motion, 30/60 Hz are converted)."""
    max_fps: float = Field(default=30, ge=12, le=60)
    gop_seconds: float = Field(default=2.0, ge=0.5, le=10)
    loudness: Loudness | None = None
    lower_third: bool = False
    """Burn the asset's lower third (name and title) for its time range."""
    burn_subtitles: bool = False
    """Burn the asset's subtitles (SRT/VTT) into the picture."""
    outputs: tuple[VideoOutput, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _rungs_exist(self) -> VideoSpec:
        rungs = {r.name for o in self.outputs if isinstance(o, HlsOutput) for r in o.rungs}
        for out in self.outputs:
            if isinstance(out, Mp4Output) and out.from_rung and out.from_rung not in rungs:
                raise ValueError(f"output {out.name}: from_rung {out.from_rung!r} is not a rung of"
                                 " this preset's HLS ladder")
        if sum(isinstance(o, HlsOutput) for o in self.outputs) > 1:
            raise ValueError("one HLS ladder per preset")
        for out in self.outputs:
            if isinstance(out, HlsOutput) and abs(out.segment_seconds / self.gop_seconds
                                                  - round(out.segment_seconds / self.gop_seconds)) > 1e-6:
                raise ValueError("HLS segment_seconds must be a whole number of GOPs (gop_seconds)")
        return self


class AudioOutput(_Frozen):
    """One audio-only rendition: the programme stereo at a loudness, in a format."""

    type: Literal["bwf", "aac", "mp3"]
    """``bwf``: Broadcast WAV (PCM 24-bit 48 kHz with a bext chunk) for radio playout;
    ``aac``: AAC-LC in MP4 (.m4a) for the web; ``mp3``: MP3 for podcasts and old players."""
    name: str
    loudness: Loudness
    bitrate: int = Field(default=128, ge=32, le=320)
    """kb/s (AAC and MP3)."""


class AudioSpec(_Frozen):
    """How a preset turns audio assets, and the sound of clips, into audio renditions."""

    from_clips: bool = True
    """Also make these renditions from the sound of video clips."""
    outputs: tuple[AudioOutput, ...] = Field(min_length=1)


class Preset(_Frozen):
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


class _PresetFile(_Frozen):
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
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InvalidPreset(f"{source}: preset.name: must be a short lower-case name like 'web'")
        images: list[dict[str, Any]] = []
        image_table = dict(doc.image or {})
        groups = image_table.pop("renditions", [])
        if image_table:
            raise InvalidPreset(f"{source}: image.{next(iter(image_table))}: unknown field")
        for index, group in enumerate(groups):
            try:
                images.extend(_ImageGroup.model_validate(group).expand())
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
        if not _NAME.fullmatch(spec.name):
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
            if not _NAME.fullmatch(name) or names.count(name) > 1:
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
    return Path(__file__).resolve().parents[2] / "presets"


def load_presets(directory: Path | None = None) -> dict[str, Preset]:
    """Load every ``*.toml`` preset in ``directory`` (``limits.toml`` excepted: the station's limits,
    :mod:`pipeline.ingest.limits`); any bad file stops the load."""
    directory = directory or default_presets_dir()
    files = sorted(f for f in directory.glob("*.toml") if f.name != LIMITS_FILE)
    if not files:
        raise InvalidPreset(f"{directory}: no preset files (*.toml) found")
    return {preset.name: preset for preset in map(load_preset_file, files)}
