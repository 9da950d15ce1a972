"""Jobs: the durable record of one submission, and what its assets came to.

Everything a cluster run needs to survive a lost broker lives in the object store:

    stories/<story>/jobs/<job>.json                 the job record: the story as submitted, raws by SHA-256
    stories/<story>/jobs/<job>/assets/<NNNN>.json   one asset's result: its manifest entry, attempts,
                                                    and for a failed render the command and log tail
    stories/<story>/jobs/<job>/cancel.json          the job was canceled (see pipeline.run.orchestration)
    stories/<story>/jobs/<job>/done.json            written after the manifest: the job is finished

The cluster keeps them in its private bucket, the embedded run in ``OUT/private``. Raw files are
uploaded before the record (content-addressed: ``raw/<sha[:2]>/<sha>``, once), so a record never
names a file the store does not hold. A job is finished only when ``done.json`` exists;
``reconcile`` re-enqueues the others, and every stage skips what is already recorded.
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
from pipeline.model.keys import job_key, raw_key
from pipeline.model.presets import Preset
from pipeline.model.story import Story, locate, parse_story
from pipeline.run.originals import store_original
from pipeline.storage import NO_CACHE, Storage, file_sha256

JOB_SCHEMA = "storymedia/job@1"
FINAL_STATES = ("complete", "partial", "failed", "canceled")

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
    def from_json(cls, data: Any, story_id: str | None = None) -> Job:
        """A job record read back from the store, checked field by field before anything uses it:
        a record is input like any other (a forged ``sha256`` of ``/some/worker/file`` must not
        make a worker render that file)."""
        if not isinstance(data, dict) or data.get("schema") != JOB_SCHEMA:
            raise StorageError("job record has an unknown schema")
        job_id = data.get("job")
        if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
            raise StorageError("job record has no valid job id")
        where = f"job record {job_id}"
        raw_story = data.get("story")
        if not isinstance(raw_story, dict):
            raise StorageError(f"{where} holds no story")
        story = parse_story(raw_story, where)
        if data.get("story_id") != story.story.id or (
                story_id is not None and story_id != story.story.id):
            raise StorageError(f"{where} does not belong to story {story_id or data.get('story_id')!r}")
        raw_assets = data.get("assets")
        if not isinstance(raw_assets, list) or len(raw_assets) != len(story.assets):
            raise StorageError(f"{where}: its assets do not match its story")
        assets = tuple(_job_asset(item, index + 1, where) for index, item in enumerate(raw_assets))
        presets = data.get("presets")
        if not isinstance(presets, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and PRESET_LABEL.fullmatch(v)
                for k, v in presets.items()):
            raise StorageError(f"{where}: presets are not name -> label")
        fingerprint = data.get("fingerprint")
        if not isinstance(fingerprint, str) or not SHA256.fullmatch(fingerprint):
            raise StorageError(f"{where}: bad fingerprint")
        return cls(id=job_id, story=story, assets=assets, presets=presets, fingerprint=fingerprint,
                   submitted_at=str(data.get("submitted_at", "")), breaking=data.get("breaking") is True)


SHA256 = re.compile(r"[0-9a-f]{64}")
PRESET_LABEL = re.compile(r"[a-z][a-z0-9-]*@[0-9]+")


def _job_asset(item: Any, order: int, where: str) -> JobAsset:
    if not isinstance(item, dict) or set(item) - {"order", "file", "sha256", "bytes", "subtitles_sha256"}:
        raise StorageError(f"{where}: asset {order} is not an asset entry")
    subtitles = item.get("subtitles_sha256")
    valid = (item.get("order") == order and isinstance(item.get("file"), str)
             and isinstance(item.get("sha256"), str) and SHA256.fullmatch(item["sha256"])
             and type(item.get("bytes")) is int and item["bytes"] >= 0
             and (subtitles is None or (isinstance(subtitles, str) and SHA256.fullmatch(subtitles))))
    if not valid:
        raise StorageError(f"{where}: asset {order} is damaged or forged (order, SHA-256 or size)")
    return JobAsset(order=order, file=item["file"], sha256=item["sha256"], bytes=item["bytes"],
                    subtitles_sha256=subtitles)


def _encode(document: dict[str, Any], sort_keys: bool = True) -> bytes:
    return (json.dumps(document, ensure_ascii=False, indent=2, sort_keys=sort_keys) + "\n").encode("utf-8")


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
    """Store the story's raw files (and subtitle files) in the private ``storage``, each once by
    content, each opened once without following links (:mod:`pipeline.run.originals`)."""
    folder = story_file.resolve().parent
    assets = []
    sent = 0
    for index, asset in enumerate(story.assets):
        name = f"{story_file}: assets[{index}].file"
        raw = store_original(storage, folder, on_disk(folder, asset.file_as_written), name)
        sent += raw.stored
        subs_sha = None
        if asset.subtitles_as_written:
            subs = store_original(storage, folder, on_disk(folder, asset.subtitles_as_written),
                                  f"{story_file}: assets[{index}].subtitles", "text/plain")
            subs_sha = subs.sha256
        assets.append(JobAsset(order=index + 1, file=asset.file, sha256=raw.sha256, bytes=raw.bytes,
                               subtitles_sha256=subs_sha))
        if on_uploaded is not None:
            on_uploaded(asset.file.rsplit("/", 1)[-1], raw.bytes)
    used = {name for asset in story.assets for name in story.asset_presets(asset)}
    labels = {name: presets[name].label for name in sorted(used)}
    return Staged(story=story, assets=tuple(assets), presets=labels,
                  fingerprint=fingerprint(story, [(a.sha256, a.subtitles_sha256) for a in assets], labels),
                  uploaded=sent)


def staged_uploads(story: Story, presets: dict[str, Preset],
                   files: dict[str, tuple[str, int]]) -> Staged:
    """A story whose raw files were uploaded already (the HTTP service): ``files`` maps each name
    as the story writes it to the (SHA-256, bytes) stored at ``raw/<sha256>``."""
    missing = [name for asset in story.assets for name in (asset.file, asset.subtitles)
               if name and name not in files]
    if missing:
        raise StorageError(f"not uploaded yet: {', '.join(missing)}")
    assets = tuple(
        JobAsset(order=index + 1, file=asset.file, sha256=files[asset.file][0], bytes=files[asset.file][1],
                 subtitles_sha256=files[asset.subtitles][0] if asset.subtitles else None)
        for index, asset in enumerate(story.assets))
    used = {name for asset in story.assets for name in story.asset_presets(asset)}
    labels = {name: presets[name].label for name in sorted(used)}
    return Staged(story=story, assets=assets, presets=labels,
                  fingerprint=fingerprint(story, [(a.sha256, a.subtitles_sha256) for a in assets], labels),
                  uploaded=0)


def on_disk(folder: Path, relative: str) -> str:
    """The asset's path as it is spelled on disk (a name written in NFD is found too)."""
    found = locate(folder, relative)
    return found.relative_to(folder).as_posix() if found is not None else relative


def record(storage: Storage, staged: Staged, job_id: str, breaking: bool) -> Job:
    """Write the job record (after the raws it names are stored)."""
    job = Job(id=job_id, story=staged.story, assets=staged.assets, presets=staged.presets,
              fingerprint=staged.fingerprint, breaking=breaking,
              submitted_at=datetime.now(UTC).isoformat(timespec="seconds"))
    storage.replace(job.key, _encode(job.to_json()), content_type="application/json",
                    cache_control=NO_CACHE)
    return job


def read_job(storage: Storage, story_id: str, job_id: str) -> Job:
    if not JOB_ID.fullmatch(job_id):
        raise StorageError(f"{job_id!r} is not a job id")
    try:
        data = json.loads(storage.get_bytes(job_key(story_id, job_id)))
    except ValueError as exc:
        raise StorageError(f"job record {job_id} of {story_id} is not valid JSON") from exc
    return Job.from_json(data, story_id)


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
    """Record one asset's result; its entry keeps its key order (the manifest is built from it)."""
    storage.replace(asset_result_key(story_id, job_id, result.order), _encode(vars(result), sort_keys=False),
                    content_type="application/json", cache_control=NO_CACHE)


def _asset_result(data: Any, order: int | None, where: str) -> AssetResult:
    """An asset result read back, checked: its order, and the fields it may have."""
    fields = {"order", "entry", "attempts", "seconds", "worker", "rendered", "reused", "diagnostics"}
    if (not isinstance(data, dict) or set(data) - fields or type(data.get("order")) is not int
            or (order is not None and data["order"] != order) or not isinstance(data.get("entry"), dict)
            or not isinstance(data["entry"].get("renditions", []), list)):
        raise StorageError(f"{where} is damaged or forged")
    return AssetResult(**data)


def read_asset_result(storage: Storage, story_id: str, job_id: str, order: int) -> AssetResult | None:
    key = asset_result_key(story_id, job_id, order)
    data = _read(storage, key)
    return _asset_result(data, order, key) if data else None


def read_asset_results(storage: Storage, story_id: str, job_id: str) -> dict[int, AssetResult]:
    prefix = f"{job_dir(story_id, job_id)}/assets/"
    found = {}
    for key in storage.list(prefix):
        order = _order_of(key)
        data = _read(storage, key)
        if data and order is not None:
            found[order] = _asset_result(data, order, key)
    return found


def _order_of(key: str) -> int | None:
    name = key.rsplit("/", 1)[-1]
    return int(name[:4]) if re.fullmatch(r"\d{4}\.json", name) else None


def recorded_orders(storage: Storage, story_id: str, job_id: str) -> set[int]:
    """The assets with a recorded result, from one listing (no reads)."""
    prefix = f"{job_dir(story_id, job_id)}/assets/"
    return {order for key in storage.list(prefix) if (order := _order_of(key)) is not None}


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
    """A local copy of a raw file, checked against its SHA-256 (kept in a per-worker cache).

    The name must be a SHA-256 (64 hex digits): a cache path can never leave the cache."""
    if not SHA256.fullmatch(sha256):
        raise StorageError(f"{sha256[:80]!r} is not a SHA-256: refusing to look it up in the raw cache")
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
