"""Reconcile: find the jobs the broker forgot and put them back on the queues.

The object store is the truth. A job record without ``done.json`` is unfinished; it is re-enqueued
when Redis has no live state for it (Redis restarted empty and its messages are gone), when
a stage gave up on it (``stalled``: the store was down through every retry), or when its live
state has not moved for ``stale_after`` seconds (a lost message, a crashed worker whose
message sits unacked). A job whose every asset is recorded but whose manifest never came is
re-enqueued after only ``READY_GRACE`` seconds: nothing is left to render, so there is nothing to
wait for (a canceled job likewise: its manifest step only marks it done). Re-enqueueing is always
safe: every stage skips what is recorded.
Incomplete multipart uploads older than ``stale_after`` are aborted (a killed worker cannot).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

from pipeline.errors import PipelineError
from pipeline.run import jobs, orchestration
from pipeline.run.orchestration import job_event
from pipeline.storage import UploadCleanup
from workers.app import queue
from workers.broker import in_error_tree
from workers.context import Context
from workers.queues import sent_header

READY_GRACE = 60.0
"""Seconds a job with every asset recorded may wait for its manifest before reconcile queues it."""
SEND_RETRY = {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1}
"""A few seconds of retries for a job's first message; then kombu's OperationalError reaches the
caller (the CLI says it cannot reach the broker; a task retries)."""


@dataclass
class Reconciled:
    requeued: list[tuple[str, str, str]] = field(default_factory=list)
    """(story, job, why)"""
    waiting: list[tuple[str, str, str]] = field(default_factory=list)
    """Unfinished jobs that are still moving: (story, job, state)."""
    aborted_uploads: int = 0


def enqueue(job: jobs.Job, ctx: Context) -> None:
    """Queue the job's first stage (the canvas grows from there) on the app's broker, stamped
    with the time it was sent (:func:`workers.queues.sent_header`: the queues' oldest age).

    Returns only once the broker took the message; raises kombu's ``OperationalError`` after
    ``SEND_RETRY`` when it cannot."""
    ctx.live.publish(job_event(job.id, job.story_id, "queued"),
                     files=[(a.order, a.file.rsplit("/", 1)[-1]) for a in job.assets])
    with ctx.app.connection_for_write() as connection:
        ctx.app.send_task("storymedia.start", kwargs={"story_id": job.story_id, "job_id": job.id},
                          queue=queue("io", job.breaking), connection=connection, headers=sent_header(),
                          retry=True, retry_policy=SEND_RETRY)


@in_error_tree
def reconcile(ctx: Context, stale_after: float | None = None, dry_run: bool = False) -> Reconciled:
    stale_after = ctx.settings.stale_after if stale_after is None else stale_after
    found = Reconciled()
    now = time.time()
    for story_id, job_id in jobs.unfinished_jobs(ctx.private):
        view = ctx.live.read(job_id)
        job = jobs.read_job(ctx.private, story_id, job_id)
        idle = now - view.updated if view is not None else 0.0
        if view is None:
            why = "the broker has no trace of it"
        elif view.state == orchestration.STALLED:
            why = f"it stalled: {view.reason}"
        elif idle >= min(READY_GRACE, stale_after) and orchestration.manifest_due(ctx.private, job):
            why = (f"it was canceled but not marked done for {idle:.0f} s"
                   if orchestration.is_canceled(ctx.private, story_id, job_id)
                   else f"every asset is recorded but no manifest came for {idle:.0f} s")
        elif idle >= stale_after:
            why = f"no progress for {idle:.0f} s ({view.state})"
        else:
            found.waiting.append((story_id, job_id, view.state))
            continue
        found.requeued.append((story_id, job_id, why))
        if not dry_run:
            enqueue(job, ctx)
    # Multipart uploads older than stale_after, never a live one: renditions in the public area,
    # raws sent by `submit` in the private one. The service's resumable uploads (uploads/, and
    # raw/ for those that declared their SHA-256) may pause for as long as STORYMEDIA_UPLOAD_EXPIRY;
    # its own cleaner ends them when they expire.
    # (An upload past its expiry is refused anyway: 410.)
    raw_after = max(stale_after, ctx.settings.upload_expiry)
    for area, prefix, older_than in ((ctx.storage, "", stale_after), (ctx.private, "raw/", raw_after)):
        if isinstance(area, UploadCleanup) and not dry_run:
            with contextlib.suppress(PipelineError):
                found.aborted_uploads += area.abort_incomplete_uploads(prefix, older_than=older_than)
    return found
