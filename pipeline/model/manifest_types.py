"""The manifest as types: the document, its story block, asset entries and each kind of rendition.

A manifest is these models written as JSON (:meth:`_Model.to_json`): fields in the order declared
here, absent ones (``None``) left out. That order is the key order of every manifest written so far:
keep it. Numbers keep their JSON type (:data:`Number`), so an integer read back is written back as
an integer. The types check shape; the JSON Schema (``schema/manifest-v1.schema.json``) stays the
published contract and checks values (key patterns, ranges) on every write.

A rendition is its :class:`RenditionHead` (what every rendition has) followed by its kind's facts
(what was measured on the output): :class:`ImageFacts`, :class:`ClipFacts` (mp4, xdcam, proxy,
social), :class:`HlsFacts`, :class:`SpriteFacts`, :class:`PosterFacts`, :class:`CaptionsFacts`,
:class:`AudioFacts`. The JSON carries no kind field: a rendition read back is told by the fields
only its kind has (see :func:`rendition_kind`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, model_validator

StoryStatus = Literal["complete", "partial", "failed"]

Number = int | float
"""A JSON number as it was given: 2 stays 2 and 2.0 stays 2.0 (``float`` alone would turn 2 into 2.0)."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the manifest: declared key order, absent fields left out."""
        data: dict[str, Any] = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return data


class StoredObject(_Model):
    """One stored object a manifest names: a rendition's main file, an HLS segment or playlist, a
    sprite sheet. ``bytes`` is 0 where the manifest does not say (never for a valid one)."""

    key: str
    bytes: int
    sha256: str


class VideoStream(_Model):
    codec: str
    pix_fmt: str
    fps: Number
    field_order: str
    rotation: int | None = None
    """Sources only, as is ``vfr``."""
    vfr: bool | None = None


class AudioStream(_Model):
    codec: str
    tracks: int | None = None
    """Renditions only: audio streams in the file (MXF carries mono tracks)."""
    channels: int
    sample_rate: int


class Loudness(_Model):
    integrated: Number
    true_peak: Number


class Failure(_Model):
    """Why an asset (or its update) failed."""

    code: str
    reason: str
    retryable: bool


class Source(_Model):
    """The raw file the renditions were made from (its key is private and never published)."""

    sha256: str
    bytes: int
    mime: str | None = None
    duration: Number | None = None
    width: int | None = None
    height: int | None = None
    orientation: int | None = None
    video: VideoStream | None = None
    audio: AudioStream | None = None


class RenditionHead(_Model):
    """What every rendition has: where it is and what it is."""

    preset: str
    name: str
    key: str
    url: str
    mime: str
    bytes: int
    sha256: str

    kind: ClassVar[str] = ""

    def objects(self) -> list[StoredObject]:
        """Every stored object of this rendition, its main file first."""
        return [StoredObject(key=self.key, bytes=self.bytes, sha256=self.sha256)]


class ImageFacts(_Model):
    width: int
    height: int
    layout: str


class ClipFacts(_Model):
    """A progressive file (mp4, xdcam, proxy, social), as ffprobe and ebur128 measured it."""

    width: int
    height: int
    video: VideoStream
    duration: Number
    bitrate: int
    audio: AudioStream | None = None
    loudness: Loudness | None = None


class HlsVariant(_Model):
    name: str
    width: int
    height: int
    codecs: str
    playlist: str
    iframe_playlist: str


class HlsFacts(_Model):
    """The master playlist is the rendition's key; segments and playlists are stored beside it."""

    width: int
    height: int
    duration: Number
    variants: tuple[HlsVariant, ...]
    segments: tuple[StoredObject, ...]
    playlists: tuple[StoredObject, ...]
    loudness: Loudness | None = None


class SpriteFacts(_Model):
    """The rendition's key is the WebVTT index pointing into the sheets."""

    width: int
    height: int
    thumbnails: int
    interval: Number
    sheets: tuple[StoredObject, ...]


class PosterFacts(_Model):
    width: int
    height: int


class CaptionsFacts(_Model):
    cues: int


class AudioFacts(_Model):
    duration: Number
    bitrate: int
    audio: AudioStream | None = None
    loudness: Loudness | None = None


# A rendition: the head's fields first, then its facts (pydantic orders fields from the last base).

class ImageRendition(ImageFacts, RenditionHead):
    kind: ClassVar[str] = "image"


class ClipRendition(ClipFacts, RenditionHead):
    kind: ClassVar[str] = "clip"


class HlsRendition(HlsFacts, RenditionHead):
    kind: ClassVar[str] = "hls"

    def objects(self) -> list[StoredObject]:
        return [*super().objects(), *self.segments, *self.playlists]


class SpriteRendition(SpriteFacts, RenditionHead):
    kind: ClassVar[str] = "sprite"

    def objects(self) -> list[StoredObject]:
        return [*super().objects(), *self.sheets]


class PosterRendition(PosterFacts, RenditionHead):
    kind: ClassVar[str] = "poster"


class CaptionsRendition(CaptionsFacts, RenditionHead):
    kind: ClassVar[str] = "captions"


class AudioRendition(AudioFacts, RenditionHead):
    kind: ClassVar[str] = "audio"


RenditionFacts = ImageFacts | ClipFacts | HlsFacts | SpriteFacts | PosterFacts | CaptionsFacts | AudioFacts
"""What a render measured on one output (everything of its rendition but the head)."""

_RENDITION_OF: dict[type[_Model], type[RenditionHead]] = {
    ImageFacts: ImageRendition, ClipFacts: ClipRendition, HlsFacts: HlsRendition,
    SpriteFacts: SpriteRendition, PosterFacts: PosterRendition, CaptionsFacts: CaptionsRendition,
    AudioFacts: AudioRendition,
}

_TELLING = (("variants", "hls"), ("sheets", "sprite"), ("cues", "captions"), ("layout", "image"),
            ("video", "clip"))


def rendition_kind(value: Any) -> str:
    """The kind of a rendition, model or JSON object: told by a field only that kind has; a picture
    with nothing more is a poster, anything else is audio."""
    if isinstance(value, RenditionHead):
        return value.kind
    if not isinstance(value, Mapping):
        return "audio"   # not an object: the audio model refuses it with a clear message
    for field, kind in _TELLING:
        if field in value:
            return kind
    return "poster" if "width" in value else "audio"


Rendition = Annotated[
    Annotated[ImageRendition, Tag("image")] | Annotated[ClipRendition, Tag("clip")]
    | Annotated[HlsRendition, Tag("hls")] | Annotated[SpriteRendition, Tag("sprite")]
    | Annotated[PosterRendition, Tag("poster")] | Annotated[CaptionsRendition, Tag("captions")]
    | Annotated[AudioRendition, Tag("audio")],
    Discriminator(rendition_kind),
]
"""Any kind of rendition; a JSON object is read as the kind :func:`rendition_kind` names."""

_RENDITION = TypeAdapter[RenditionHead](Rendition)


def rendition(head: RenditionHead, facts: RenditionFacts | Mapping[str, Any]) -> RenditionHead:
    """The rendition of ``facts``' kind with ``head``'s fields (facts as JSON: the kind they tell,
    see :func:`rendition_kind`; pydantic's ValidationError when they fit none)."""
    if isinstance(facts, Mapping):
        return parse_rendition({**head.to_json(), **facts})
    return _RENDITION_OF[type(facts)](**dict(head), **dict(facts))


def parse_rendition(data: Mapping[str, Any] | RenditionHead) -> RenditionHead:
    """A rendition from its JSON object (pydantic's ValidationError when it is not one)."""
    return _RENDITION.validate_python(data)


class AssetEntry(_Model):
    """One asset of the story: ``done`` with its renditions, or ``failed`` with an ``error`` and
    none. ``update_failed``: the asset was submitted again and failed; the renditions are the
    previous version's, still valid."""

    id: str
    kind: Literal["image", "video", "audio", "unknown"]
    order: int
    filename: str
    source: Source
    caption: str
    credit: str
    copyright: str
    focus: tuple[Number, Number] | None = None
    status: Literal["done", "failed"]
    renditions: tuple[Rendition, ...]
    error: Failure | None = None
    update_failed: Failure | None = None

    @model_validator(mode="after")
    def _error_when_failed(self) -> AssetEntry:
        if self.status == "failed" and self.error is None:
            raise ValueError("a failed asset says why in error")
        return self
    def failed(self, error: Failure) -> AssetEntry:
        """This entry as a failed asset: no renditions, the reason in ``error``."""
        return self.model_copy(update={"status": "failed", "renditions": (), "error": error})

    def with_update_failed(self, order: int, error: Failure) -> AssetEntry:
        """This (published) entry kept at ``order`` after the asset's new attempt failed."""
        return self.model_copy(update={"order": order, "update_failed": error})

    def objects(self) -> list[StoredObject]:
        """Every stored object the entry's renditions name."""
        return [part for item in self.renditions for part in item.objects()]


class StoryBlock(_Model):
    id: str
    title: str
    byline: str
    published: str
    source: str
    language: str
    copyright: str | None = None


class Summary(_Model):
    assets: int
    done: int
    failed: int
    updates_failed: int | None = None
    renditions: int
    bytes: int


class Manifest(_Model):
    """The whole document (``schema`` is ``schema_id`` here: pydantic models own ``schema``)."""

    schema_id: str = Field(alias="schema")
    story: StoryBlock
    version: int
    status: StoryStatus
    generated_at: str
    job: str
    summary: Summary
    assets: tuple[AssetEntry, ...]

    def objects(self) -> list[StoredObject]:
        """Every stored object the manifest names, in asset and rendition order."""
        return [part for entry in self.assets for part in entry.objects()]


def asset_entry(data: Mapping[str, Any] | AssetEntry) -> AssetEntry:
    """An asset entry from its JSON object (pydantic's ValidationError when it is not one)."""
    return data if isinstance(data, AssetEntry) else AssetEntry.model_validate(data)
