"""The manifest: one versioned JSON document per story, the contract with the website and playout.

It is written last, after every object it lists is stored: first ``manifest.v<N>.json``, then
``manifest.json`` is replaced atomically. When nothing changed since the last version no new
version is written (``generated_at`` and ``job`` alone do not make a change).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

from pipeline.errors import StorageError
from pipeline.keys import manifest_key, manifest_version_key
from pipeline.storage import NO_CACHE, Storage
from pipeline.story import Story

SCHEMA_ID = "storymedia/manifest@1"
_VOLATILE = ("version", "generated_at", "job")


@cache
def schema() -> dict[str, Any]:
    """The published JSON Schema of manifest v1."""
    text = resources.files("pipeline").joinpath("schema/manifest-v1.schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def validate(document: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` when ``document`` is not a valid v1 manifest."""
    jsonschema.validate(document, schema(), format_checker=jsonschema.FormatChecker())


def story_status(assets: list[dict[str, Any]]) -> str:
    failed = sum(1 for a in assets if a["status"] == "failed")
    if not failed:
        return "complete"
    return "failed" if failed == len(assets) else "partial"


def build(story: Story, assets: list[dict[str, Any]], job: str, version: int) -> dict[str, Any]:
    """Assemble a manifest from per-asset entries (already in story order)."""
    info = story.story
    renditions = [r for a in assets for r in a["renditions"]]
    return {
        "schema": SCHEMA_ID,
        "story": {
            "id": info.id, "title": info.title, "byline": info.byline,
            "published": info.published.isoformat(), "source": info.source,
            "language": info.language, "copyright": info.copyright,
        },
        "version": version,
        "status": story_status(assets),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "job": job,
        "summary": {
            "assets": len(assets),
            "done": sum(1 for a in assets if a["status"] == "done"),
            "failed": sum(1 for a in assets if a["status"] == "failed"),
            "renditions": len(renditions),
            "bytes": sum(r["bytes"] for r in renditions),
        },
        "assets": assets,
    }


def read_current(storage: Storage, story_id: str) -> dict[str, Any] | None:
    """The story's current manifest, or None when there is none (or it is unreadable)."""
    key = manifest_key(story_id)
    if not storage.exists(key):
        return None
    try:
        loaded: dict[str, Any] = json.loads(storage.get_bytes(key))
    except (StorageError, ValueError):
        return None
    return loaded if loaded.get("schema") == SCHEMA_ID else None


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


def write(storage: Storage, story: Story, assets: list[dict[str, Any]], job: str) -> Written:
    """Validate and write the manifest unless its content is unchanged."""
    story_id = story.story.id
    previous = read_current(storage, story_id)
    version = int(previous["version"]) + 1 if previous else 1
    document = build(story, assets, job, version)
    validate(document)
    if previous is not None and same_content(previous, document):
        return Written(manifest_key(story_id), int(previous["version"]), False, previous)
    data = encode(document)
    storage.replace(manifest_version_key(story_id, version), data,
                    content_type="application/json", cache_control=NO_CACHE)
    storage.replace(manifest_key(story_id), data, content_type="application/json",
                    cache_control=NO_CACHE)
    return Written(manifest_key(story_id), version, True, document)


def renditions_by_key(document: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Every rendition entry of a manifest, by key (for reuse on a rerun)."""
    if not document:
        return {}
    return {r["key"]: r for a in document.get("assets", []) for r in a.get("renditions", [])}
