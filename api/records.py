"""The service's own records, in the private area beside the job records:

    stories/<story>/story.json              the story as last created or replaced over HTTP, its desk
    stories/<story>/files/<sha256(name)>.json   an uploaded file attached to the story: name as
                                            written in the story, SHA-256, bytes (raw/<sha> holds it)
    catalog/<story>.json                    one small entry per story (desk, title, breaking, times,
                                            latest job): what the story list reads
    jobs/<job>.json                         the story a job belongs to (job ids are global in the API)
    idempotency/<sha256(token id, key)>.json   the job a POST with an Idempotency-Key made

Every record read back is checked before use (it is input like any other).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipeline.errors import StorageError
from pipeline.model.story import SLUG, Story, parse_story
from pipeline.run import jobs
from pipeline.storage import NO_CACHE, Storage


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _put(storage: Storage, key: str, document: dict[str, Any]) -> None:
    storage.replace(key, json.dumps(document, ensure_ascii=False, sort_keys=True).encode("utf-8"),
                    content_type="application/json", cache_control=NO_CACHE)


def _get(storage: Storage, key: str) -> dict[str, Any] | None:
    if not storage.exists(key):
        return None
    try:
        data = json.loads(storage.get_bytes(key))
    except ValueError as exc:
        raise StorageError(f"the record {key} is not valid JSON") from exc
    if not isinstance(data, dict):
        raise StorageError(f"the record {key} is damaged")
    return data


@dataclass(frozen=True)
class StoryRecord:
    story: Story
    desk: str
    created: str
    updated: str
    created_by: str

    @property
    def id(self) -> str:
        return self.story.story.id


def story_key(story_id: str) -> str:
    return f"stories/{story_id}/story.json"


def catalog_key(story_id: str) -> str:
    return f"catalog/{story_id}.json"


def save_story(private: Storage, story: Story, desk: str, who: str,
               previous: StoryRecord | None) -> StoryRecord:
    stamp = now()
    record = StoryRecord(story=story, desk=previous.desk if previous else desk,
                         created=previous.created if previous else stamp, updated=stamp,
                         created_by=previous.created_by if previous else who)
    _put(private, story_key(record.id), {
        "schema": "storymedia/story-record@1", "desk": record.desk, "created": record.created,
        "updated": record.updated, "created_by": record.created_by,
        "story": story.model_dump(mode="json")})
    entry = read_catalog(private, record.id) or {}
    _put(private, catalog_key(record.id), {
        **entry, "id": record.id, "desk": record.desk, "title": story.story.title,
        "breaking": story.story.breaking, "created": record.created, "updated": record.updated})
    return record


def read_story(private: Storage, story_id: str) -> StoryRecord | None:
    if not SLUG.fullmatch(story_id):
        return None
    data = _get(private, story_key(story_id))
    if data is None:
        return None
    raw = data.get("story")
    if data.get("schema") != "storymedia/story-record@1" or not isinstance(raw, dict):
        raise StorageError(f"the story record of {story_id} is damaged")
    story = parse_story(raw, f"story record {story_id}")
    if story.story.id != story_id:
        raise StorageError(f"the story record of {story_id} names another story")
    return StoryRecord(story=story, desk=str(data.get("desk", "")), created=str(data.get("created", "")),
                       updated=str(data.get("updated", "")), created_by=str(data.get("created_by", "")))


def read_catalog(private: Storage, story_id: str) -> dict[str, Any] | None:
    return _get(private, catalog_key(story_id))


def catalog(private: Storage) -> list[dict[str, Any]]:
    """Every story's catalog entry, by id."""
    found = []
    for key in sorted(private.list("catalog/")):
        name = key[len("catalog/"):]
        if name.endswith(".json") and SLUG.fullmatch(name[:-5]):
            entry = _get(private, key)
            if entry is not None and entry.get("id") == name[:-5]:
                found.append(entry)
    return found


def set_latest_job(private: Storage, story_id: str, job_id: str) -> None:
    entry = read_catalog(private, story_id)
    if entry is not None:
        _put(private, catalog_key(story_id), {**entry, "latest_job": job_id})
    _put(private, f"jobs/{job_id}.json", {"job": job_id, "story": story_id})


def story_of_job(private: Storage, job_id: str) -> str | None:
    """The story a job belongs to (the service's index, else a search of the job records)."""
    if not jobs.JOB_ID.fullmatch(job_id):
        return None
    entry = _get(private, f"jobs/{job_id}.json")
    if entry is not None and isinstance(entry.get("story"), str) and SLUG.fullmatch(entry["story"]):
        return str(entry["story"])
    for key in private.list("stories/"):
        if key.endswith(f"/jobs/{job_id}.json"):
            return key.split("/")[1]
    return None


# uploaded files --------------------------------------------------------------------------------

def _file_key(story_id: str, name: str) -> str:
    return f"stories/{story_id}/files/{hashlib.sha256(name.encode('utf-8')).hexdigest()[:32]}.json"


def attach(private: Storage, story_id: str, name: str, sha256: str, size: int) -> None:
    """Attach an uploaded raw (already at ``raw/<sha256>``) to the story's file ``name``."""
    _put(private, _file_key(story_id, name),
         {"file": name, "sha256": sha256, "bytes": size, "uploaded": now()})


def attached(private: Storage, story_id: str) -> dict[str, tuple[str, int]]:
    """The story's uploaded files: name as written -> (SHA-256, bytes)."""
    found = {}
    for key in private.list(f"stories/{story_id}/files/"):
        data = _get(private, key)
        if (data and isinstance(data.get("file"), str) and isinstance(data.get("sha256"), str)
                and jobs.SHA256.fullmatch(data["sha256"]) and type(data.get("bytes")) is int
                and key == _file_key(story_id, data["file"])):
            found[data["file"]] = (data["sha256"], data["bytes"])
    return found


def story_files(story: Story) -> list[str]:
    """Every file the story names (assets, then subtitles), as written, once each."""
    names: list[str] = []
    for asset in story.assets:
        for name in (asset.file, asset.subtitles):
            if name and name not in names:
                names.append(name)
    return names


# idempotency -------------------------------------------------------------------------------------

def _idempotency_key(who: str, key: str) -> str:
    digest = hashlib.sha256(who.encode("utf-8") + b"\n" + key.encode("utf-8")).hexdigest()
    return f"idempotency/{digest}.json"


def remembered_job(private: Storage, who: str, key: str) -> dict[str, Any] | None:
    return _get(private, _idempotency_key(who, key))


def remember_job(private: Storage, who: str, key: str, story_id: str, job_id: str) -> None:
    _put(private, _idempotency_key(who, key), {"story": story_id, "job": job_id, "at": now()})
