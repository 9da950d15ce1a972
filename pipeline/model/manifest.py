"""The manifest: one versioned JSON document per story, the contract with the website and playout.

It is written last, after every object it lists is stored: first ``manifest.v<N>.json`` (created
only if absent: a version file is never replaced), then ``manifest.json`` is replaced atomically.
When nothing changed since the last version no new version is written (``generated_at`` and
``job`` alone do not make a change). A manifest read back is validated against the schema and the
types (:mod:`pipeline.model.manifest_types`) first. Entries come in as those types or as their JSON
objects; documents go out as JSON objects. :func:`objects` lists every stored object entries name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import pydantic

from pipeline.errors import ManifestInvalid, StorageError
from pipeline.model.keys import manifest_key, manifest_version_key
from pipeline.model.manifest_types import (
    AssetEntry,
    Manifest,
    StoredObject,
    StoryBlock,
    StoryStatus,
    Summary,
    asset_entry,
)
from pipeline.model.manifest_types import parse_rendition as parse_rendition  # for readers of one rendition
from pipeline.model.story import Story
from pipeline.storage import NO_CACHE, Storage

SCHEMA_ID = "storymedia/manifest@1"
_VOLATILE = ("version", "generated_at", "job")


@cache
def schema() -> dict[str, Any]:
    """The published JSON Schema of manifest v1."""
    text = resources.files("pipeline.model").joinpath("schema/manifest-v1.schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _where(path: Iterable[object]) -> str:
    return "/".join(str(part) for part in path) or "(top level)"


def validate(document: dict[str, Any], name: str = "the document") -> None:
    """Raise :class:`ManifestInvalid` (naming the field) when ``document`` is not a valid v1
    manifest."""
    try:
        jsonschema.validate(document, schema(), format_checker=jsonschema.FormatChecker())
    except jsonschema.ValidationError as exc:
        raise ManifestInvalid(f"{name} is not a valid manifest: {_where(exc.absolute_path)}:"
                              f" {exc.message[:200]}") from exc


Entry = AssetEntry | Mapping[str, Any]
"""An asset entry, typed or as its JSON object."""


def _entries(assets: Iterable[Entry]) -> list[AssetEntry]:
    try:
        return [asset_entry(a) for a in assets]
    except pydantic.ValidationError as exc:
        raise ManifestInvalid(f"an asset entry is not valid: {_pydantic_reason(exc)}") from exc


def _pydantic_reason(exc: pydantic.ValidationError) -> str:
    first = exc.errors()[0]
    return f"{_where(first['loc'])}: {first['msg'][:200]}"


def objects(entries: Iterable[Entry]) -> list[StoredObject]:
    """Every stored object the asset entries name (key, sha256, bytes): each rendition's main file,
    then its HLS segments and playlists or its sprite sheets; in entry and rendition order."""
    return [part for entry in _entries(entries) for part in entry.objects()]


def story_status(assets: Sequence[Entry]) -> str:
    """``complete`` when every asset is done and up to date; ``failed`` when none has renditions;
    else ``partial`` (an asset failed, or an update failed and its previous renditions stand)."""
    return _status(_entries(assets))


def _status(entries: Sequence[AssetEntry]) -> StoryStatus:
    if not any(a.status == "failed" or a.update_failed is not None for a in entries):
        return "complete"
    return "failed" if all(a.status == "failed" for a in entries) else "partial"


def document(story: Story, assets: Sequence[Entry], job: str, version: int) -> Manifest:
    """The typed manifest of per-asset entries (already in story order)."""
    info = story.story
    entries = _entries(assets)
    renditions = [r for a in entries for r in a.renditions]
    return Manifest(
        schema=SCHEMA_ID,
        story=StoryBlock(id=info.id, title=info.title, byline=info.byline,
                         published=info.published.isoformat(), source=info.source,
                         language=info.language, copyright=info.copyright),
        version=version,
        status=_status(entries),
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        job=job,
        summary=Summary(
            assets=len(entries),
            done=sum(1 for a in entries if a.status == "done"),
            failed=sum(1 for a in entries if a.status == "failed"),
            updates_failed=sum(1 for a in entries if a.update_failed is not None),
            renditions=len(renditions),
            bytes=sum(r.bytes for r in renditions)),
        assets=tuple(entries))


def build(story: Story, assets: Sequence[Entry], job: str, version: int) -> dict[str, Any]:
    """Assemble a manifest (its JSON object) from per-asset entries (already in story order)."""
    return document(story, assets, job, version).to_json()


def keep_published(assets: Sequence[Entry], previous: dict[str, Any] | None) -> list[AssetEntry]:
    """Never publish less than before: an asset that failed now but had renditions in the previous
    version keeps that version's entry (its renditions, and the caption they carry), marked with
    ``update_failed`` and the reason. A producer's bad file, a crash, a time limit or a lack of
    memory on a re-run all leave what the website already shows in place.

    The previous entry is found by asset id (same raw file), else by file name when the name is
    unique in the previous version (the file was replaced by one that failed)."""
    entries = _entries(assets)
    if previous is None:
        return entries
    published = [a for a in _entries(previous.get("assets", [])) if a.status == "done"]
    by_id = {a.id: a for a in published}
    names = [a.filename for a in published]
    by_name = {a.filename: a for a in published if names.count(a.filename) == 1}
    kept = []
    for entry in entries:
        before = by_id.get(entry.id) or by_name.get(entry.filename)
        if entry.status != "failed" or entry.error is None or before is None:
            kept.append(entry)
            continue
        kept.append(before.with_update_failed(entry.order, entry.error))
    return kept


def parse(data: bytes, key: str) -> dict[str, Any]:
    """A manifest read back from the store, checked against the schema and the types: hostile
    until checked (keys become file paths in ``pull``). StorageError says what is wrong
    (:class:`ManifestInvalid` when it is JSON but not a manifest)."""
    try:
        loaded = json.loads(data)
    except ValueError as exc:
        raise StorageError(f"{key} is not valid JSON: {exc}") from exc
    validate(loaded, key)
    try:
        Manifest.model_validate(loaded)
    except pydantic.ValidationError as exc:
        raise ManifestInvalid(f"{key} is not a valid manifest: {_pydantic_reason(exc)}") from exc
    checked: dict[str, Any] = loaded
    return checked


def read(storage: Storage, key: str) -> dict[str, Any]:
    """The manifest at ``key``, validated; StorageError when it is absent or invalid."""
    return parse(storage.get_bytes(key), key)


def read_current(storage: Storage, story_id: str) -> dict[str, Any] | None:
    """The story's current manifest, or None when there is none or it does not check out (then
    nothing is reused from it)."""
    key = manifest_key(story_id)
    if not storage.exists(key):
        return None
    try:
        return read(storage, key)
    except StorageError:
        return None


_VERSION_FILE = re.compile(r"manifest\.v([1-9][0-9]{0,8})\.json")


def versions(storage: Storage, story_id: str) -> list[int]:
    """The version numbers stored for the story (``manifest.v<N>.json``), ascending."""
    folder = f"stories/{story_id}/"
    found = []
    for key in storage.list(folder + "manifest.v"):
        match = _VERSION_FILE.fullmatch(key[len(folder):])
        if match:
            found.append(int(match.group(1)))
    return sorted(found)


def _latest(storage: Storage, story_id: str) -> tuple[int, dict[str, Any] | None]:
    """The highest version number stored and its document (None when unreadable or absent)."""
    numbers = versions(storage, story_id)
    if not numbers:
        return 0, None
    try:
        return numbers[-1], read(storage, manifest_version_key(story_id, numbers[-1]))
    except StorageError:
        return numbers[-1], None


def _stable(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k not in _VOLATILE}


def same_content(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """True when two manifests differ at most in version, time and job."""
    return _stable(a) == _stable(b)


@dataclass(frozen=True)
class Written:
    key: str
    version: int
    changed: bool
    document: dict[str, Any]


def encode(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


WRITE_ATTEMPTS = 5


def write(storage: Storage, story: Story, assets: Sequence[Entry], job: str, *,
          force: bool = False) -> Written:
    """Validate and write the next manifest version, unless its content is unchanged (with
    ``force``, even then: an operator's re-run; ``generated_at`` tells the versions apart).

    The next version follows the highest ``manifest.v<N>.json`` stored (not ``manifest.json``,
    which may be gone), and a version file is created only if it does not exist yet: two writers
    never both write "version 2" — the one that loses reads the winner's version and goes on from
    there. ``manifest.json`` is then replaced (and restored when it was lost). Callers serialise
    writers of one story (a lock file in the embedded run, the Redis lock in the cluster) so
    ``manifest.json`` never goes back to an older version.
    """
    story_id = story.story.id
    current_key = manifest_key(story_id)
    for _ in range(WRITE_ATTEMPTS):
        number, latest = _latest(storage, story_id)
        document = build(story, keep_published(assets, latest), job, number + 1)
        validate(document)
        if latest is not None and not force and same_content(latest, document):
            current = read_current(storage, story_id)
            if current is None or current.get("version") != number:
                storage.replace(current_key, encode(latest), content_type="application/json",
                                cache_control=NO_CACHE)
            return Written(current_key, number, False, latest)
        data = encode(document)
        if storage.create(manifest_version_key(story_id, number + 1), data,
                          content_type="application/json", cache_control=NO_CACHE):
            storage.replace(current_key, data, content_type="application/json", cache_control=NO_CACHE)
            return Written(current_key, number + 1, True, document)
    raise StorageError(f"the manifest of {story_id} kept changing while this run wrote it"
                       f" ({WRITE_ATTEMPTS} tries); run the story again")


def renditions_by_key(document: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Every rendition entry of a manifest, by key (for reuse on a rerun)."""
    if not document:
        return {}
    return {r["key"]: r for a in document.get("assets", []) for r in a.get("renditions", [])}
