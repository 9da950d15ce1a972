"""Object keys. Content-addressed, so the same inputs always land on the same key.

- raw:       ``raw/<sha256[:2]>/<sha256>``
- rendition: ``renditions/<asset sha256[:16]>/<preset>@<version>/<name>-<spec hash[:8]>.<ext>``
- story:     ``stories/<story id>/manifest.json``, ``manifest.v<N>.json``, ``jobs/<job id>.json``

User file names never become keys.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

PIPELINE_MAJOR = 1
"""Bumped when rendering changes bytes for the same spec: every spec hash changes with it."""


def raw_key(sha256: str) -> str:
    return f"raw/{sha256[:2]}/{sha256}"


def asset_id(sha256: str) -> str:
    return sha256[:16]


def spec_hash(material: dict[str, Any]) -> str:
    """sha256 of everything that changes a rendition's bytes, as canonical JSON."""
    blob = json.dumps({"pipeline": PIPELINE_MAJOR, **material}, sort_keys=True,
                      ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def rendition_key(asset_sha256: str, preset_label: str, name: str, hash_: str, ext: str) -> str:
    return f"renditions/{asset_id(asset_sha256)}/{preset_label}/{name}-{hash_[:8]}.{ext}"


def manifest_key(story_id: str) -> str:
    return f"stories/{story_id}/manifest.json"


def manifest_version_key(story_id: str, version: int) -> str:
    return f"stories/{story_id}/manifest.v{version}.json"


def job_key(story_id: str, job_id: str) -> str:
    return f"stories/{story_id}/jobs/{job_id}.json"
