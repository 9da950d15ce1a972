"""The producer's and operator's side of the cluster: submit a story, follow it, look at it.

Submitting stores the raws (content-addressed, each once), then the job record, then enqueues:
the durable state exists before any message does. The same story with the same files and presets
submitted again while it is still running attaches to the running job instead of starting another.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from pipeline.errors import PipelineError, StorageError
from pipeline.model import manifest
from pipeline.model.keys import manifest_key
from pipeline.model.presets import Preset
from pipeline.model.story import Story
from pipeline.run import jobs
from pipeline.run.orchestration import STALLED, job_event
from pipeline.storage import BucketSetup, Presigning, file_sha256
from workers.broker import broker_error, in_error_tree
from workers.context import Context
from workers.live import JobView
from workers.reconcile import enqueue

CLAIM_WHILE_SUBMITTING = 600


@dataclass(frozen=True)
class Submitted:
    job: str
    story: str
    attached: bool
    """True when an identical submission was already running: this is that job."""
    uploaded: int


def ensure_buckets(ctx: Context) -> None:
    """Make sure both areas' buckets exist, with the rule that expires abandoned multipart uploads."""
    for area in (ctx.storage, ctx.private):
        if isinstance(area, BucketSetup):
            area.ensure_bucket()


@in_error_tree
def stage(ctx: Context, story_file: Path, story: Story, presets: dict[str, Preset],
          on_uploaded: jobs.Uploaded | None = None) -> jobs.Staged:
    """Store the story's raw files in the private area (each once, by content)."""
    ensure_buckets(ctx)
    return jobs.stage(story_file, story, presets, ctx.private, on_uploaded)


@in_error_tree
def submit(ctx: Context, story_file: Path, story: Story, presets: dict[str, Preset], *,
           breaking: bool = False, on_uploaded: jobs.Uploaded | None = None) -> Submitted:
    """Stage the story's raws, then submit it (:func:`submit_staged`): the command line's submit."""
    return submit_staged(ctx, stage(ctx, story_file, story, presets, on_uploaded), breaking)


@in_error_tree
def submit_staged(ctx: Context, staged: jobs.Staged, breaking: bool = False) -> Submitted:
    """Record a staged story as a job and queue its first stage, or attach to the job already
    running the same submission (same story, files and presets). ``breaking`` (or the story's own
    flag) sends it down the breaking-news lane."""
    story_id = staged.story.story.id
    job_id = jobs.new_job_id()
    holder = ctx.live.claim(story_id, staged.fingerprint, job_id, CLAIM_WHILE_SUBMITTING)
    if holder != job_id:
        return Submitted(job=holder, story=story_id, attached=True, uploaded=staged.uploaded)
    job = jobs.record(ctx.private, staged, job_id, breaking or staged.story.story.breaking)
    try:
        enqueue(job, ctx)
    except BaseException:
        # No broker took the message: a new submission must not attach to this job, and the
        # job's live state must not say "queued" (reconcile resumes a stalled job at once).
        ctx.live.publish(job_event(job_id, story_id, STALLED,
                                   "the broker did not take the job's first message;"
                                   " `storymedia reconcile` resumes it"))
        ctx.live.release(story_id, staged.fingerprint, job_id)
        raise
    ctx.live.hold(story_id, staged.fingerprint, job_id, int(ctx.settings.visibility_timeout))
    return Submitted(job=job_id, story=story_id, attached=False, uploaded=staged.uploaded)


@in_error_tree
def find_job(ctx: Context, job_or_story: str) -> tuple[str, str]:
    """(story id, job id) for a job id or a story id (its latest job)."""
    if jobs.JOB_ID.fullmatch(job_or_story):
        unreachable: redis.RedisError | None = None
        try:
            view = ctx.live.read(job_or_story)
        except redis.RedisError as exc:   # the broker is down: the store may still know the job
            view, unreachable = None, exc
        if view is not None:
            return view.story, job_or_story
        for key in ctx.private.list("stories/"):
            if key.endswith(f"/jobs/{job_or_story}.json"):
                return key.split("/")[1], job_or_story
        if unreachable is not None:
            raise broker_error(unreachable, ctx.settings.broker_url) from unreachable
        raise StorageError(f"no job {job_or_story} (neither the broker nor the store knows it)")
    story_jobs = jobs.story_jobs(ctx.private, job_or_story)
    if not story_jobs:
        raise StorageError(f"no story or job called {job_or_story!r} in {ctx.private.url}")
    return job_or_story, story_jobs[-1]


@dataclass
class JobStatus:
    story: str
    job: str
    state: str
    reason: str
    assets: list[dict[str, Any]]
    done: dict[str, Any] | None


@in_error_tree
def status(ctx: Context, story_id: str, job_id: str) -> JobStatus:
    """One job as operators see it: durable results first, live progress for the rest."""
    job = jobs.read_job(ctx.private, story_id, job_id)
    results = jobs.read_asset_results(ctx.private, story_id, job_id)
    done = jobs.read_done(ctx.private, story_id, job_id)
    try:
        view: JobView | None = ctx.live.read(job_id)
    except Exception:  # the broker is down: the store still answers
        view = None
    rows = []
    for item in job.assets:
        live = view.assets.get(item.order, {}) if view else {}
        row: dict[str, Any] = {"order": item.order, "file": item.file, "state": live.get("state", "pending"),
                               "done": live.get("done", 0), "total": live.get("total", 0),
                               "attempts": live.get("attempts", 0), "worker": live.get("worker", "")}
        result = results.get(item.order)
        if result is not None:
            entry = result.entry
            row.update(state=entry["status"], attempts=result.attempts, worker=result.worker,
                       renditions=len(entry["renditions"]), rendered=result.rendered,
                       reused=result.reused, seconds=result.seconds)
            if entry["status"] == "failed":
                row["reason"] = entry["error"]["reason"]
                row["retryable"] = entry["error"]["retryable"]
            if result.diagnostics:
                row["diagnostics"] = result.diagnostics
        rows.append(row)
    if done:
        state, reason = str(done["status"]), ""
    elif view is not None:
        state, reason = view.state, view.reason
    else:
        state, reason = "unknown", "the broker has no live state; `storymedia reconcile` resumes the job"
    return JobStatus(story=story_id, job=job_id, state=state, reason=reason, assets=rows, done=done)


def _live_rows(job: jobs.Job, view: JobView) -> list[dict[str, Any]]:
    rows = []
    for item in job.assets:
        live = view.assets.get(item.order, {})
        rows.append({"order": item.order, "file": item.file, "state": live.get("state", "pending"),
                     "done": live.get("done", 0), "total": live.get("total", 0),
                     "attempts": live.get("attempts", 0), "worker": live.get("worker", "")})
    return rows


@in_error_tree
def follow(ctx: Context, story_id: str, job_id: str, on_update: Callable[[JobStatus], None],
           every: float = 0.5, timeout: float | None = None, store_every: float = 5.0) -> JobStatus:
    """Follow a job until it is finished (``done.json`` exists), calling ``on_update`` as it moves.

    Progress comes from Redis every ``every`` seconds (one small read); the object store is asked
    only when Redis says the job ended, or every ``store_every`` seconds in case Redis lost it."""
    started = time.monotonic()
    job: jobs.Job | None = None
    asked = 0.0
    while True:
        # (an attached submission may look before the first one has written the record)
        with contextlib.suppress(PipelineError):
            job = job or jobs.read_job(ctx.private, story_id, job_id)
        try:
            view: JobView | None = ctx.live.read(job_id)
        except Exception:  # the broker is away: the store still answers, less often
            view = None
        if job is not None and view is not None:
            on_update(JobStatus(story=story_id, job=job_id, state=view.state, reason=view.reason,
                                assets=_live_rows(job, view), done=None))
        now = time.monotonic()
        ended = view is not None and view.state in jobs.FINAL_STATES
        if job is not None and (ended or now - asked >= store_every):
            asked = now
            if jobs.read_done(ctx.private, story_id, job_id):
                final = status(ctx, story_id, job_id)
                on_update(final)
                return final
        if timeout is not None and now - started > timeout:
            raise StorageError(f"job {job_id} did not finish within {timeout:.0f} s"
                               f" (see `storymedia status {job_id}`)")
        time.sleep(every)


def current_manifest(ctx: Context, story_id: str) -> dict[str, Any]:
    """The story's current manifest, checked against the schema (StorageError when it is not)."""
    key = manifest_key(story_id)
    if not ctx.storage.exists(key):
        raise StorageError(f"story {story_id} has no manifest in {ctx.storage.url} yet")
    return manifest.read(ctx.storage, key)


def presigned(ctx: Context, document: dict[str, Any], expires: int | None) -> dict[str, Any]:
    """The manifest with every rendition URL replaced by a presigned GET URL."""
    storage = ctx.storage
    if not isinstance(storage, Presigning):
        raise StorageError(f"presigned URLs need S3 storage ({storage.url} is not)")
    for asset in document["assets"]:
        for rendition in asset["renditions"]:
            rendition["url"] = storage.presign(rendition["key"], expires)
    return document


def pull(ctx: Context, story_id: str, preset: str, dest: Path,
         on_file: Callable[[str, int], None] | None = None) -> list[Path]:
    """Download one preset's renditions of a story (HLS segments and sprite sheets included),
    each checked against its SHA-256. Files keep their key's path under ``dest``."""
    document = current_manifest(ctx, story_id)
    picked = [r for a in document["assets"] for r in a["renditions"]
              if r["preset"] == preset or r["preset"].split("@")[0] == preset]
    if not picked:
        known = sorted({r["preset"] for a in document["assets"] for r in a["renditions"]})
        raise StorageError(f"story {story_id} has no renditions of preset {preset!r}"
                           f" (it has: {', '.join(known) or 'none'})")
    wanted = [part for rendition in picked for part in manifest.parse_rendition(rendition).objects()]
    saved = []
    root = dest.resolve()
    for key, sha, size in ((part.key, part.sha256, part.bytes) for part in wanted):
        target = (root / key).resolve()
        if not target.is_relative_to(root):   # the schema refuses such keys; never trust one check
            raise StorageError(f"the manifest names {key!r}, which would land outside {dest}")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not (target.is_file() and file_sha256(target) == sha):
            ctx.storage.download(key, target)
            if file_sha256(target) != sha:
                target.unlink()
                raise StorageError(f"{key} came back from the store damaged (SHA-256 mismatch)")
        saved.append(target)
        if on_file is not None:
            on_file(key, size)
    return saved
