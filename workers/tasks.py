"""Thin Celery tasks: ids in, one pipeline call, a small JSON result out.

One flat fan-out per job, and a fan-in kept in the object store, not in the broker::

    start(job)                        io              queues a probe for every asset not yet recorded
      probe(asset)                    probe           bad input is recorded as failed HERE; a usable
                                                      file goes straight on to its render queue
        render(asset)                 image | video   render AND store (no shared disk), record result
          -> write_manifest(job)      manifest        queued by whichever stage records the job's
                                                      last asset; verifies every object, then writes

Why no Celery chord: a chord's join lives in the result backend (Redis). A task that finished while
Redis was restarting could not store its result, the chord turned into a ``ChordError`` and the
story hung until ``reconcile`` (reproduced three times out of three with ``kill -9`` of Redis and
a restart with AOF). Here the join is the store's list of asset results: each stage records its
asset, then lists the job's results, and the one that sees all of them queues the manifest. Two
stages finishing together may both queue it; ``write_manifest`` is idempotent under the story's
manifest lock. No task result is stored anywhere.

Every stage reads the job record and the asset results from the object store and writes its own
result there, so a redelivered or re-enqueued task redoes only what is missing. Bad input is a
result (the story completes as ``partial``); only infrastructure errors raise, and those retry with
backoff a bounded number of times. An asset that keeps killing its worker or running past the time
limit is set aside after ``STORYMEDIA_MAX_ATTEMPTS`` runs. Messages sent from a task wait for a
restarting broker (``PUBLISH_RETRY``) rather than fail the task.
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any, ClassVar, cast

import redis
from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.utils.log import get_task_logger
from kombu.exceptions import OperationalError

from pipeline.errors import PipelineError, StorageError
from pipeline.ingest.info import ImageInfo
from pipeline.ingest.probe import probe
from pipeline.model import manifest
from pipeline.model.keys import asset_id
from pipeline.run import jobs, orchestration, stopping
from pipeline.run.asset import AssetWork, failed_entry, process_asset
from pipeline.run.orchestration import STALLED, asset_event, job_event
from pipeline.storage import Storage, UploadCleanup
from workers.app import queue
from workers.context import Context, context
from workers.queues import sent_header

log = get_task_logger(__name__)
HOST = socket.gethostname()
CANCEL_POLL = 1.0
"""Seconds between looks at the cancel marker while an asset renders (one HEAD on the store)."""
PUBLISH_RETRY = {"max_retries": 12, "interval_start": 0.5, "interval_step": 1, "interval_max": 5}
"""About 50 s of a broker that is down (a Redis restart) before sending a message gives up."""


class Stage(Task):  # type: ignore[misc]
    """Common settings: late acks, requeue on a lost worker, bounded retries of infrastructure errors."""

    abstract = True
    acks_late = True
    reject_on_worker_lost = True
    autoretry_for = (StorageError, redis.RedisError, ConnectionError, OperationalError)
    retry_backoff = 2
    retry_backoff_max = 120
    retry_jitter = True
    max_retries = 6
    # A retry is a new message: sent with the default policy (about 1 s), it failed while Redis
    # restarted, Celery then rejected the original without requeue, and the asset was lost.
    retry_kwargs: ClassVar[dict[str, Any]] = {"retry_policy": PUBLISH_RETRY}

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        job, story = kwargs.get("job_id"), kwargs.get("story_id")
        if job and story:
            reason = exc.reason if isinstance(exc, PipelineError) else f"{type(exc).__name__}: {exc}"
            context().live.publish(job_event(
                job, story, STALLED, f"{self.name} gave up: {reason}; `storymedia reconcile` resumes it"))


def _work(ctx: Context, job: jobs.Job, order: int) -> AssetWork:
    """The asset's work item, with its raw file fetched into this worker's cache; an asset being
    re-run does not reuse its renditions of the re-run's preset and makes them on keys of its own."""
    entry = job.assets[order - 1]
    asset = job.story.assets[order - 1]
    path = jobs.fetch_raw(ctx.private, entry.sha256, ctx.raw_cache)
    subtitles = (jobs.fetch_raw(ctx.private, entry.subtitles_sha256, ctx.raw_cache)
                 if entry.subtitles_sha256 else None)
    current = manifest.read_current(ctx.storage, job.story_id)
    known = orchestration.reusable(ctx.private, job, order, manifest.renditions_by_key(current))
    generations = orchestration.asset_generations(ctx.private, job, order)
    return AssetWork(order=order, path=path, asset=asset, story=job.story.story,
                     presets=tuple(ctx.presets[name] for name in job.story.asset_presets(asset)
                                   if name in ctx.presets),
                     known=known, subtitles=subtitles,
                     renew=generations.renew, generations=generations.earlier)


def _attempt(ctx: Context, job: jobs.Job, order: int, stage: str) -> int:
    """Count one more execution of the stage for the asset; returns this round's count. Each
    operator's re-run of the asset is a round of its own: its attempts are bounded apart from the
    earlier ones (the recorded result counts them all, ``orchestration.executions``)."""
    pending = orchestration.read_rerun(ctx.private, job, order)
    return ctx.live.attempt(job.id, order, stage if pending is None else f"{stage}@rerun-{pending.id}")


def _preset_mismatch(ctx: Context, job: jobs.Job) -> str | None:
    wrong = [f"{label} (this worker has {ctx.presets[name].label if name in ctx.presets else 'none'})"
             for name, label in job.presets.items()
             if name not in ctx.presets or ctx.presets[name].label != label]
    if not wrong:
        return None
    return (f"the job needs presets {', '.join(wrong)}: update the worker's presets or submit the"
            " story again")


def _record_failure(ctx: Context, job: jobs.Job, work: AssetWork, code: str, reason: str,
                    retryable: bool, attempts: int) -> dict[str, Any]:
    orchestration.record_failure(ctx.private, job, work.order, failed_entry(work, code, reason, retryable),
                                 attempts, HOST)
    ctx.live.publish(asset_event(job.id, job.story_id, work.order, "failed", 1, 1, reason=reason))
    _fan_in(ctx, job)
    return {"order": work.order, "kind": "failed"}


def _canceled(ctx: Context, job: jobs.Job, order: int) -> dict[str, Any]:
    """The job was canceled before this asset started: it does not start."""
    ctx.live.publish(asset_event(job.id, job.story_id, order, "canceled"))
    _fan_in(ctx, job)
    return {"order": order, "status": "canceled"}


def _send(task: Any, job: jobs.Job, stage: str, countdown: float = 0, **kwargs: Any) -> None:
    """Queue the next stage of a job, waiting out a broker restart (``PUBLISH_RETRY``).

    Each send opens its own broker connection: after Redis restarted, a pooled producer's channel
    can be left half-closed and fail with an AttributeError inside kombu instead of reconnecting
    (seen in the Redis-restart test). A few sends per asset make the extra connect negligible.
    """
    with task.app.connection_for_write() as connection:
        task.apply_async(kwargs={"story_id": job.story_id, "job_id": job.id, **kwargs},
                         queue=queue(stage, job.breaking), countdown=countdown or None,
                         connection=connection, headers=sent_header(), retry=True,
                         retry_policy=PUBLISH_RETRY)


def _fan_in(ctx: Context, job: jobs.Job) -> None:
    """Queue the manifest once it is due (every asset recorded, or the job canceled)."""
    if orchestration.manifest_due(ctx.private, job):
        _send(write_manifest, job, "manifest")


@shared_task(base=Stage, bind=True, name="storymedia.start")
def start(self: Stage, *, story_id: str, job_id: str) -> dict[str, Any]:
    """Fan a job out: probe every asset that has no result yet."""
    ctx = context()
    job = jobs.read_job(ctx.private, story_id, job_id)
    if jobs.read_done(ctx.private, story_id, job_id):
        return {"job": job_id, "already": "done"}
    todo = orchestration.to_do(ctx.private, job)
    ctx.live.publish(job_event(job_id, story_id, "running"),
                     files=[(order, job.assets[order - 1].file.rsplit("/", 1)[-1]) for order in todo])
    if not todo:
        _send(write_manifest, job, "manifest")
    for order in todo:
        _send(probe_asset, job, "probe", order=order)
    return {"job": job_id, "assets": len(todo)}


@shared_task(base=Stage, bind=True, name="storymedia.probe")
def probe_asset(self: Stage, *, story_id: str, job_id: str, order: int) -> dict[str, Any]:
    """Read and check one raw file; a file we cannot use is recorded as failed, with the reason.

    A usable file goes on to the render queue for its kind at once: a photo does not wait for the
    story's clips to be probed.
    """
    ctx = context()
    if jobs.read_asset_result(ctx.private, story_id, job_id, order) is not None:
        return {"order": order, "kind": "recorded"}
    job = jobs.read_job(ctx.private, story_id, job_id)
    if orchestration.is_canceled(ctx.private, story_id, job_id):
        return _canceled(ctx, job, order)
    ctx.live.publish(asset_event(job_id, story_id, order, "probing", 0, 1))
    work = _work(ctx, job, order)
    attempts = _attempt(ctx, job, order, "probe")
    mismatch = _preset_mismatch(ctx, job)
    if mismatch:
        return _record_failure(ctx, job, work, "preset-mismatch", mismatch, True, attempts)
    if attempts > ctx.settings.max_attempts:
        return _record_failure(ctx, job, work, "poison",
                               f"reading this file stopped the worker {attempts - 1} times; it was set"
                               " aside", False, attempts)
    try:
        info = probe(work.path, ctx.limits)
    except PipelineError as exc:
        if exc.retryable:
            raise
        return _record_failure(ctx, job, work, exc.code, exc.reason, exc.retryable, attempts)
    kind = "image" if isinstance(info, ImageInfo) else info.kind
    ctx.live.publish(asset_event(job_id, story_id, order, "queued", 0, 1))
    _send(render, job, "image" if kind == "image" else "video", order=order)
    return {"order": order, "kind": kind}


@shared_task(base=Stage, bind=True, name="storymedia.render")
def render(self: Stage, *, story_id: str, job_id: str, order: int) -> dict[str, Any]:
    """Render one asset's missing renditions and store each one; record the asset's result.

    While it renders, a thread looks at the job's cancel marker every ``CANCEL_POLL`` seconds;
    once the job is canceled the render stops where it is (:mod:`pipeline.run.stopping`: ffmpeg
    killed, scratch removed, s3transfer's upload aborted), this process's own unfinished uploads of
    the asset are aborted, nothing is recorded and the fan-in finishes the job ``canceled``. (Not
    Celery's revoke with terminate: that kills the pool process with SIGTERM, which leaves the
    multipart uploads and the fan-in to nobody, and it needs the task's id, which no record keeps.)"""
    ctx = context()
    job = jobs.read_job(ctx.private, story_id, job_id)
    existing = jobs.read_asset_result(ctx.private, story_id, job_id, order)
    if existing is not None:   # a redelivery: the work is recorded, make sure the fan-in happened
        _fan_in(ctx, job)
        return {"order": order, "status": existing.entry["status"], "skipped": True}
    if orchestration.is_canceled(ctx.private, story_id, job_id):
        return _canceled(ctx, job, order)
    attempts = _attempt(ctx, job, order, "render")
    work = _work(ctx, job, order)
    limit = ctx.settings.soft_time_limit
    if attempts > ctx.settings.max_attempts:
        _record_failure(ctx, job, work, "poison",
                        f"this file stopped its worker or ran past the {limit:.0f} s time limit"
                        f" {attempts - 1} times; it was set aside (see the worker logs)", True, attempts)
        return {"order": order, "status": "failed"}
    prefix = f"renditions/{asset_id(job.assets[order - 1].sha256)}/"
    if attempts > 1:
        _abort_own_uploads(ctx, job, order)   # what an earlier attempt left half-sent, and only that
    last = [0.0]

    def progress(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if stage == "rendering" and 0 < done < total and now - last[0] < 0.5:
            return
        last[0] = now
        ctx.live.publish(asset_event(job_id, story_id, order, stage, done, total,
                                     attempts=attempts, worker=HOST))

    def canceled() -> bool:
        return orchestration.is_canceled(ctx.private, story_id, job_id)

    guarded = _GuardedStore(ctx, job, order)
    try:
        with stopping.watch(canceled, CANCEL_POLL):
            outcome = process_asset(work, cast(Storage, guarded), ctx.limits, scratch_root=ctx.scratch,
                                    progress=progress)
    except RecordedElsewhere:
        log.warning("asset %s of job %s was recorded by another attempt while this one rendered"
                    " (a redelivery after the broker lost its state); nothing of this one is stored",
                    order, job_id)
        _abort_own_uploads(ctx, job, order, prefix)
        _fan_in(ctx, job)
        return {"order": order, "status": "skipped", "skipped": True}
    except stopping.AssetCanceled:
        log.info("asset %s of job %s: the job was canceled; its render was stopped", order, job_id)
        _abort_own_uploads(ctx, job, order, prefix)
        return _canceled(ctx, job, order)
    except SoftTimeLimitExceeded:
        if attempts < ctx.settings.max_attempts:
            log.warning("asset %s of job %s ran past the soft time limit; retrying", order, job_id)
            raise self.retry(countdown=5, max_retries=ctx.settings.max_attempts,
                             retry_policy=PUBLISH_RETRY) from None
        _record_failure(ctx, job, work, "time-limit",
                        f"rendering took longer than the {limit:.0f} s time limit {attempts} times;"
                        " it was stopped and set aside", True, attempts)
        return {"order": order, "status": "failed"}
    except StorageError as exc:
        log.warning("asset %s of job %s: %s; the render will be retried", order, job_id, exc.reason)
        _abort_own_uploads(ctx, job, order, prefix)
        raise
    if guarded.recorded_elsewhere():   # it came while this attempt stored: the first record stays
        _check_recorded_objects(ctx, job, order)
        _fan_in(ctx, job)
        return {"order": order, "status": "skipped", "skipped": True}
    orchestration.record_outcome(ctx.private, job, order, outcome, attempts, HOST)
    _fan_in(ctx, job)
    return {"order": order, "status": outcome.entry["status"], "rendered": outcome.rendered}


class RecordedElsewhere(StorageError):
    """Another attempt recorded the asset while this one rendered: this one stores nothing."""


class _GuardedStore:
    """The public store as one render attempt writes to it: before each upload it asks whether
    another attempt of the same asset has recorded its result meanwhile (two attempts overlap
    when the broker lost its state and ``reconcile`` sent the job again while the first still
    ran), and then stops (``RecordedElsewhere``) instead of writing over objects that record,
    and perhaps a manifest, names with their SHA-256. It asks at most every ``LOOK_EVERY``
    seconds. Two attempts storing within the same few seconds still overlap: the second's
    objects are checked against the first's record after it (``_check_recorded_objects``)."""

    LOOK_EVERY = 1.0

    def __init__(self, ctx: Context, job: jobs.Job, order: int) -> None:
        self._ctx, self._job, self._order = ctx, job, order
        self._looked = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx.storage, name)

    def recorded_elsewhere(self) -> bool:
        job = self._job
        return jobs.read_asset_result(self._ctx.private, job.story_id, job.id, self._order) is not None

    def put_file(self, key: str, path: Any, **options: Any) -> bool:
        now = time.monotonic()
        if now - self._looked >= self.LOOK_EVERY:
            if self.recorded_elsewhere():
                raise RecordedElsewhere(f"asset {self._order} of job {self._job.id} was recorded by another"
                                        " attempt")
            self._looked = now
        return bool(self._ctx.storage.put_file(key, path, **options))


def _check_recorded_objects(ctx: Context, job: jobs.Job, order: int) -> None:
    """After an overlap: say loudly if an object of the asset's record no longer holds its bytes."""
    result = jobs.read_asset_result(ctx.private, job.story_id, job.id, order)
    if result is None:
        return
    changed = [part.key for part in manifest.objects([result.entry])
               if not ctx.storage.exists(part.key, part.sha256)]
    if changed:
        log.error("asset %s of job %s: two attempts stored at once and %d object(s) no longer hold"
                  " the recorded bytes (%s); re-run the asset (storymedia rerun)", order, job.id,
                  len(changed), ", ".join(changed[:3]))


def _abort_own_uploads(ctx: Context, job: jobs.Job, order: int, prefix: str | None = None) -> None:
    """Abort the multipart uploads this asset's attempts started and did not finish — never by
    prefix alone: another job rendering the same asset writes the same content-addressed keys, and
    aborting its live upload made it fail (``NoSuchUpload``) and render again.

    With ``prefix``, this process's own unfinished uploads under it are aborted now; those that
    cannot be (the store is down) are remembered in Redis for the asset's next attempt, whichever
    process runs it. Without, the remembered ones are aborted. Uploads of a worker killed mid-way
    are left to ``reconcile`` (by age) and the bucket's lifecycle rule.
    """
    storage = ctx.storage
    if not isinstance(storage, UploadCleanup):
        return
    if prefix is not None:
        with contextlib.suppress(PipelineError):
            storage.abort_own_uploads(prefix)
        left = storage.own_uploads(prefix)
        if left:
            ctx.live.remember_uploads(job.id, order, left)
        return
    for key, upload_id in ctx.live.remembered_uploads(job.id, order):
        with contextlib.suppress(PipelineError):
            storage.abort_upload(key, upload_id)
            ctx.live.forget_upload(job.id, order, key, upload_id)


@shared_task(base=Stage, bind=True, name="storymedia.manifest")
def write_manifest(self: Stage, *, story_id: str, job_id: str) -> dict[str, Any]:
    """Check every object the job made against its SHA-256, then write the manifest, last.

    Runs under the story's manifest lock from the first check to ``done.json``, so two copies of
    this task (two stages finished together, or a redelivery) write one manifest version.
    """
    ctx = context()
    job = jobs.read_job(ctx.private, story_id, job_id)
    if jobs.read_done(ctx.private, story_id, job_id):
        return {"job": job_id, "already": True}
    with ctx.live.manifest_lock(story_id, timeout=300):
        finished = orchestration.finish(ctx.storage, ctx.private, job)
        if finished.already:
            return {"job": job_id, "status": finished.status, "already": True}
        if finished.waiting:   # being rendered again (see below): the last of them queues this task anew
            return {"job": job_id, "waiting": list(finished.waiting)}
        if finished.damaged:
            return _rerun(ctx, job, finished)
    ctx.live.publish(job_event(job_id, story_id, finished.status, finished.reason))
    ctx.live.release(story_id, job.fingerprint, job_id)
    log.info("story %s job %s: %s, manifest v%s", story_id, job_id, finished.status, finished.version)
    return {"job": job_id, "status": finished.status, "version": finished.version}


def _rerun(ctx: Context, job: jobs.Job, finished: orchestration.Finished) -> dict[str, Any]:
    """Objects went missing or changed since their asset was recorded: render those assets again."""
    rounds = ctx.live.attempt(job.id, 0, "manifest")
    if rounds > ctx.settings.max_attempts:
        raise StorageError(finished.reason + f"; gave up after {rounds - 1} rounds")
    orchestration.render_again(ctx.private, job, finished.damaged)
    ctx.live.publish(job_event(job.id, job.story_id, "running", finished.reason + "; rendering them again"))
    _send(start, job, "io", countdown=2)
    return {"job": job.id, "rerun": list(finished.damaged)}


@shared_task(base=Stage, bind=True, name="storymedia.reconcile")
def reconcile_task(self: Stage) -> dict[str, Any]:
    """Beat: re-enqueue jobs without a manifest and without recent progress."""
    from workers.reconcile import reconcile

    found = reconcile(context())
    return {"requeued": [f"{story}/{job}" for story, job, _ in found.requeued],
            "aborted_uploads": found.aborted_uploads}
