"""Jobs: the durable record of one submission, and what its assets came to.

Everything a cluster run needs to survive a lost broker lives in the object store:

    stories/<story>/jobs/<job>.json                 the job record: the story as submitted, raws by SHA-256
    stories/<story>/jobs/<job>/assets/<NNNN>.json   one asset's result: its manifest entry, attempts,
                                                    and for a failed render the command and log tail
    stories/<story>/jobs/<job>/done.json            written after the manifest: the job is finished

Raw files are uploaded before the record (content-addressed: ``raw/<sha[:2]>/<sha>``, once), so a
record never names a file the store does not hold. A job is finished only when ``done.json``
exists; ``reconcile`` re-enqueues the others, and every stage skips what is already recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.errors import StorageError
from pipeline.keys import job_key, raw_key
from pipeline.presets import Preset
from pipeline.storage import NO_CACHE, Storage, file_sha256
from pipeline.story import Story, asset_path, parse_story

JOB_SCHEMA = "storymedia/job@1"
FINAL_STATES = ("complete", "partial", "failed")

Uploaded = Callable[[str, int], None]
"""Called with (file name, bytes) after each raw file is stored (or found already stored)."""


def new_job_id() -> str:
    """Time-ordered and unique: ``20261128-021800-3f9a1c``."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


JOB_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")


def later(a: str, b: str) -> bool:
    """True when job id ``a`` was made after job id ``b`` (both time-ordered ids)."""
    return bool(JOB_ID.fullmatch(a) and JOB_ID.fullmatch(b)) and a > b


def job_dir(story_id: str, job_id: str) -> str:
    return f"stories/{story_id}/jobs/{job_id}"


def asset_result_key(story_id: str, job_id: str, order: int) -> str:
    return f"{job_dir(story_id, job_id)}/assets/{order:04d}.json"


def done_key(story_id: str, job_id: str) -> str:
    return f"{job_dir(story_id, job_id)}/done.json"


@dataclass(frozen=True)
class JobAsset:
    order: int
    file: str
    sha256: str
    bytes: int
    subtitles_sha256: str | None = None


@dataclass(frozen=True)
class Job:
    """A submitted story, as the workers see it."""

    id: str
    story: Story
    assets: tuple[JobAsset, ...]
    presets: dict[str, str]
    """Preset name -> label (``web@3``) at submission; workers refuse to render other versions."""
    fingerprint: str
    submitted_at: str
    breaking: bool

    @property
    def story_id(self) -> str:
        return self.story.story.id

    @property
    def key(self) -> str:
        return job_key(self.story_id, self.id)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": JOB_SCHEMA, "job": self.id, "story_id": self.story_id,
            "submitted_at": self.submitted_at, "breaking": self.breaking,
            "fingerprint": self.fingerprint, "presets": self.presets,
            "story": self.story.model_dump(mode="json"),
            "assets": [vars(a) for a in self.assets],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        if data.get("schema") != JOB_SCHEMA:
            raise StorageError(f"job record has an unknown schema {data.get('schema')!r}")
        return cls(id=data["job"], story=parse_story(data["story"], f"job {data['job']}"),
                   assets=tuple(JobAsset(**a) for a in data["assets"]), presets=data["presets"],
                   fingerprint=data["fingerprint"], submitted_at=data["submitted_at"],
                   breaking=bool(data["breaking"]))


def _encode(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode("utf-8")


def fingerprint(story: Story, shas: list[tuple[str, str | None]], labels: dict[str, str]) -> str:
    """Same story, same files, same presets -> same fingerprint (duplicate submissions collapse)."""
    blob = json.dumps({"story": story.model_dump(mode="json"), "files": shas, "presets": labels},
                      sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Staged:
    """A story whose raws are in the store, ready to be recorded as a job."""

    story: Story
    assets: tuple[JobAsset, ...]
    presets: dict[str, str]
    fingerprint: str
    uploaded: int
    """Raw files actually sent (the others were already stored)."""


def stage(story_file: Path, story: Story, presets: dict[str, Preset], storage: Storage,
          on_uploaded: Uploaded | None = None) -> Staged:
    """Upload the story's raw files (and subtitle files), each once by content."""
    folder = story_file.resolve().parent
    assets = []
    sent = 0
    for index, asset in enumerate(story.assets):
        path = asset_path(story_file, asset)
        sha = file_sha256(path)
        if storage.put_file(raw_key(sha), path, sha256=sha, content_type="application/octet-stream"):
            sent += 1
        subs_sha = None
        if asset.subtitles:
            subs = folder / asset.subtitles
            subs_sha = file_sha256(subs)
            storage.put_file(raw_key(subs_sha), subs, sha256=subs_sha, content_type="text/plain")
        assets.append(JobAsset(order=index + 1, file=asset.file, sha256=sha, bytes=path.stat().st_size,
                               subtitles_sha256=subs_sha))
        if on_uploaded is not None:
            on_uploaded(path.name, path.stat().st_size)
    used = {name for asset in story.assets for name in story.asset_presets(asset)}
    labels = {name: presets[name].label for name in sorted(used)}
    return Staged(story=story, assets=tuple(assets), presets=labels,
                  fingerprint=fingerprint(story, [(a.sha256, a.subtitles_sha256) for a in assets], labels),
                  uploaded=sent)


def record(storage: Storage, staged: Staged, job_id: str, breaking: bool) -> Job:
    """Write the job record (after the raws it names are stored)."""
    job = Job(id=job_id, story=staged.story, assets=staged.assets, presets=staged.presets,
              fingerprint=staged.fingerprint, breaking=breaking,
              submitted_at=datetime.now(UTC).isoformat(timespec="seconds"))
    storage.replace(job.key, _encode(job.to_json()), content_type="application/json",
                    cache_control=NO_CACHE)
    return job


def read_job(storage: Storage, story_id: str, job_id: str) -> Job:
    try:
        data = json.loads(storage.get_bytes(job_key(story_id, job_id)))
    except ValueError as exc:
        raise StorageError(f"job record {job_id} of {story_id} is not valid JSON") from exc
    return Job.from_json(data)


def _read(storage: Storage, key: str) -> dict[str, Any] | None:
    if not storage.exists(key):
        return None
    try:
        loaded: dict[str, Any] = json.loads(storage.get_bytes(key))
    except ValueError:
        return None
    return loaded


@dataclass(frozen=True)
class AssetResult:
    order: int
    entry: dict[str, Any]
    attempts: int = 1
    seconds: float = 0.0
    worker: str = ""
    rendered: int = 0
    reused: int = 0
    diagnostics: dict[str, Any] | None = None
    """For a failed render: the ffmpeg command and the tail of its log."""


def write_asset_result(storage: Storage, story_id: str, job_id: str, result: AssetResult) -> None:
    storage.replace(asset_result_key(story_id, job_id, result.order), _encode(vars(result)),
                    content_type="application/json", cache_control=NO_CACHE)


def read_asset_result(storage: Storage, story_id: str, job_id: str, order: int) -> AssetResult | None:
    data = _read(storage, asset_result_key(story_id, job_id, order))
    return AssetResult(**data) if data else None


def read_asset_results(storage: Storage, story_id: str, job_id: str) -> dict[int, AssetResult]:
    prefix = f"{job_dir(story_id, job_id)}/assets/"
    found = {}
    for key in storage.list(prefix):
        data = _read(storage, key)
        if data:
            found[int(data["order"])] = AssetResult(**data)
    return found


def recorded_orders(storage: Storage, story_id: str, job_id: str) -> set[int]:
    """The assets with a recorded result, from one listing (no reads)."""
    prefix = f"{job_dir(story_id, job_id)}/assets/"
    return {int(key.rsplit("/", 1)[-1].split(".", 1)[0]) for key in storage.list(prefix)
            if key.endswith(".json")}


def all_recorded(storage: Storage, job: Job) -> bool:
    """Every asset of the job has a result: nothing is left to render, the manifest can follow."""
    recorded = recorded_orders(storage, job.story_id, job.id)
    return all(a.order in recorded for a in job.assets)


def drop_asset_result(storage: Storage, story_id: str, job_id: str, order: int) -> None:
    storage.delete(asset_result_key(story_id, job_id, order))


def mark_done(storage: Storage, story_id: str, job_id: str, status: str, manifest_version: int,
              superseded: bool = False) -> None:
    storage.replace(done_key(story_id, job_id), _encode({
        "job": job_id, "status": status, "manifest_version": manifest_version,
        "superseded": superseded, "finished_at": datetime.now(UTC).isoformat(timespec="seconds")}),
        content_type="application/json", cache_control=NO_CACHE)


def read_done(storage: Storage, story_id: str, job_id: str) -> dict[str, Any] | None:
    return _read(storage, done_key(story_id, job_id))


def story_jobs(storage: Storage, story_id: str) -> list[str]:
    """The story's job ids, oldest first."""
    prefix = f"stories/{story_id}/jobs/"
    return sorted(key[len(prefix):-5] for key in storage.list(prefix)
                  if key.endswith(".json") and "/" not in key[len(prefix):])


def unfinished_jobs(storage: Storage) -> Iterator[tuple[str, str]]:
    """(story id, job id) of every job record without ``done.json``."""
    records, done = set(), set()
    for key in storage.list("stories/"):
        parts = key.split("/")
        if len(parts) == 4 and parts[2] == "jobs" and parts[3].endswith(".json"):
            records.add((parts[1], parts[3][:-5]))
        elif len(parts) == 5 and parts[2] == "jobs" and parts[4] == "done.json":
            done.add((parts[1], parts[3]))
    yield from sorted(records - done)


def fetch_raw(storage: Storage, sha256: str, cache: Path, limit_bytes: int = 20 * 1024**3) -> Path:
    """A local copy of a raw file, checked against its SHA-256 (kept in a per-worker cache)."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / sha256
    if path.is_file():
        os.utime(path)
        return path
    partial = cache / f".{sha256}.{secrets.token_hex(4)}.part"
    try:
        storage.download(raw_key(sha256), partial)
        if file_sha256(partial) != sha256:
            raise StorageError(f"raw file {sha256[:12]} came back from the store damaged"
                               " (its SHA-256 does not match)")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    _prune(cache, limit_bytes, keep=path)
    return path


def _prune(cache: Path, limit_bytes: int, keep: Path) -> None:
    """Drop the least recently used raws while the cache is over its size limit."""
    files = []
    for entry in cache.iterdir():
        if entry.is_file() and not entry.name.startswith("."):
            stat = entry.stat()
            files.append((stat.st_mtime, stat.st_size, entry))
    total = sum(size for _, size, _ in files)
    for _, size, entry in sorted(files, key=lambda f: f[0]):
        if total <= limit_bytes:
            break
        if entry != keep:
            entry.unlink(missing_ok=True)
            total -= size
