"""What a job is and what happens next: one description of the work for every executor.

A job is one submission of a story, kept durably in the private area (:mod:`pipeline.run.jobs`:
the job record, one result per asset, ``done.json``). This module decides, from those records alone:

- which assets are still to do (no recorded result) and in what order (biggest raw file first);
- when the manifest is due (every asset recorded, or the job canceled);
- how the job is finished (every object the results name checked by SHA-256; damaged or missing
  ones send their assets round again; a later job's manifest is kept; else the manifest is
  written, then ``done.json``);
- what a re-run means (the named assets' results are dropped and they run again; the job is open
  again and its manifest is written anew) and what a cancel means (a marker in the job's record
  area: assets not started are not started, the story's manifest is not replaced, the job ends
  ``canceled``).

Progress goes out as :class:`JobEvent`, built here for every executor. The executors (the embedded
process pool, :mod:`pipeline.run.embedded`; the Celery tasks in ``workers``) decide only how a
unit of work is run and how events travel.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pipeline.errors import StorageError
from pipeline.model import manifest
from pipeline.notify import announce
from pipeline.run import jobs
from pipeline.storage import NO_CACHE, Storage

if TYPE_CHECKING:   # the decisions need no render stack (the broker's side imports this module)
    from pipeline.run.asset import AssetOutcome

JOB_STATES = ("queued", "running", "complete", "partial", "failed", "canceled")
"""A job's states; the last four are final (``done.json`` holds one of them)."""
STALLED = "stalled"
"""Live only: a stage gave up on a running job (``reconcile`` resumes it)."""
ASSET_STATES = ("pending", "probing", "rendering", "storing", "done", "failed", "canceled")

_STAGE_STATE = {
    "pending": "pending", "queued": "pending",   # waiting for a worker (after the probe, too)
    "probing": "probing", "rendering": "rendering", "storing": "storing",
    "done": "done", "failed": "failed", "canceled": "canceled",
}

JOB_ORDER = 0
"""The ``order`` of an event about the job as a whole (assets count from 1)."""


@dataclass(frozen=True)
class JobEvent:
    """One step of a job or of one of its assets, as every executor reports it."""

    job_id: str
    story_id: str
    order: int
    """The asset's place in the story (from 1); ``JOB_ORDER`` (0) for the job itself."""
    state: str
    """A job state (``JOB_STATES`` or ``STALLED``) or an asset state (``ASSET_STATES``)."""
    done: int = 0
    total: int = 0
    reason: str = ""
    attempts: int = 0
    worker: str = ""

    @property
    def about_job(self) -> bool:
        return self.order == JOB_ORDER


def asset_state(stage: str) -> str:
    """The asset state a stage name stands for (``process_asset``'s progress, a task's step)."""
    try:
        return _STAGE_STATE[stage]
    except KeyError:
        raise ValueError(f"unknown asset stage {stage!r}") from None


def job_event(job_id: str, story_id: str, state: str, reason: str = "") -> JobEvent:
    if state not in JOB_STATES and state != STALLED:
        raise ValueError(f"unknown job state {state!r}")
    return JobEvent(job_id=job_id, story_id=story_id, order=JOB_ORDER, state=state, reason=reason)


def asset_event(job_id: str, story_id: str, order: int, stage: str, done: int = 0, total: int = 0,
                *, reason: str = "", attempts: int = 0, worker: str = "") -> JobEvent:
    if order < 1:
        raise ValueError(f"asset order {order} is not 1 or more")
    return JobEvent(job_id=job_id, story_id=story_id, order=order, state=asset_state(stage),
                    done=done, total=total, reason=reason, attempts=attempts, worker=worker)


# What a job is and what is left of it -----------------------------------------------------------

def work_order(job: jobs.Job) -> list[int]:
    """Every asset of the job, biggest raw file first: the clip that takes a minute starts at once
    and the photos fill the other processes around it (longest job first shortens the story)."""
    return [a.order for a in sorted(job.assets, key=lambda a: a.bytes, reverse=True)]


def to_do(private: Storage, job: jobs.Job) -> list[int]:
    """The assets without a recorded result, in ``work_order``; none once the job is canceled."""
    if is_canceled(private, job.story_id, job.id):
        return []
    recorded = jobs.recorded_orders(private, job.story_id, job.id)
    return [order for order in work_order(job) if order not in recorded]


def manifest_due(private: Storage, job: jobs.Job) -> bool:
    """Every asset has a result (nothing left to render), or the job was canceled."""
    return jobs.all_recorded(private, job) or is_canceled(private, job.story_id, job.id)


def may_start(private: Storage, job: jobs.Job, order: int) -> bool:
    """An asset may start when it has no result yet and the job is not canceled."""
    return (not is_canceled(private, job.story_id, job.id)
            and jobs.read_asset_result(private, job.story_id, job.id, order) is None)


# Recording results ---------------------------------------------------------------------------------

def record_outcome(private: Storage, job: jobs.Job, order: int, outcome: AssetOutcome,
                   attempts: int = 1, worker: str = "") -> jobs.AssetResult:
    """Record what one asset came to (its manifest entry, and how it got there)."""
    result = jobs.AssetResult(
        order=order, entry=outcome.entry, attempts=attempts, seconds=round(outcome.seconds, 2),
        worker=worker, rendered=outcome.rendered, reused=outcome.reused,
        diagnostics=outcome.diagnostics)
    jobs.write_asset_result(private, job.story_id, job.id, result)
    return result


def record_failure(private: Storage, job: jobs.Job, order: int, entry: dict[str, Any],
                   attempts: int = 1, worker: str = "") -> jobs.AssetResult:
    """Record an asset that failed outside ``process_asset`` (a crashed worker, a poison file):
    ``entry`` is its failed entry (:func:`pipeline.run.asset.failed_entry`)."""
    result = jobs.AssetResult(order=order, entry=entry, attempts=attempts, worker=worker)
    jobs.write_asset_result(private, job.story_id, job.id, result)
    return result


# Finishing, re-running, canceling ------------------------------------------------------------------

@dataclass(frozen=True)
class Finished:
    """What ``finish`` came to. ``status`` is the job's final state, or ``""`` when it is not
    finished: some assets are still to be recorded (``waiting``) or must run again (``damaged``)."""

    status: str = ""
    version: int = 0
    superseded: bool = False
    """A later job of the story had already written its manifest: that one was kept."""
    already: bool = False
    """The job was finished before this call."""
    written: manifest.Written | None = None
    waiting: tuple[int, ...] = ()
    damaged: tuple[int, ...] = ()
    reason: str = ""


def finish(public: Storage, private: Storage, job: jobs.Job) -> Finished:
    """Finish the job if it is due: check, write the manifest, mark the job done.

    The caller holds the story's manifest lock (a lock file in the embedded run, the Redis lock
    in the cluster) from this call's first read to its last write. Damaged assets are only named
    (``Finished.damaged``): the executor bounds how often it sends them round again
    (:func:`render_again`)."""
    done = jobs.read_done(private, job.story_id, job.id)
    if done:
        return Finished(status=str(done["status"]), version=int(done.get("manifest_version", 0)),
                        superseded=bool(done.get("superseded")), already=True)
    if is_canceled(private, job.story_id, job.id):
        current = manifest.read_current(public, job.story_id)
        version = int(current["version"]) if current else 0
        jobs.mark_done(private, job.story_id, job.id, "canceled", version)
        return Finished(status="canceled", version=version, reason=_cancel_reason(private, job))
    results = jobs.read_asset_results(private, job.story_id, job.id)
    missing = tuple(a.order for a in job.assets if a.order not in results)
    if missing:
        return Finished(waiting=missing)
    damaged = tuple(order for order, result in sorted(results.items())
                    if not all(public.exists(o.key, o.sha256) for o in manifest.objects([result.entry])))
    if damaged:
        return Finished(damaged=damaged, reason=f"the objects of assets {', '.join(map(str, damaged))}"
                                                " do not check out")
    entries = [results[a.order].entry for a in job.assets]
    current = manifest.read_current(public, job.story_id)
    if current is not None and jobs.later(str(current.get("job", "")), job.id):
        status, version = manifest.story_status(entries), int(current["version"])
        jobs.mark_done(private, job.story_id, job.id, status, version, superseded=True)
        return Finished(status=status, version=version, superseded=True)
    written = manifest.write(public, job.story, entries, job.id)
    status = str(written.document["status"])
    jobs.mark_done(private, job.story_id, job.id, status, written.version)
    announce.job_finished(public, private, job.story_id, job.id, status, written)   # never raises
    return Finished(status=status, version=written.version, written=written)


def render_again(private: Storage, job: jobs.Job, orders: Iterable[int]) -> None:
    """Send these assets round again within the job (their objects did not check out): their
    results are dropped, so they run again before the manifest is due."""
    for order in orders:
        jobs.drop_asset_result(private, job.story_id, job.id, order)


def rerun(private: Storage, job: jobs.Job, orders: Iterable[int]) -> None:
    """A re-run of a job's assets: their results are dropped and the job is open again (not done,
    not canceled), so they run again and the manifest is written anew (a new version when
    anything changed). The executor then runs the job as it runs a new one."""
    render_again(private, job, orders)
    private.delete(cancel_key(job.story_id, job.id))
    private.delete(jobs.done_key(job.story_id, job.id))


def cancel_key(story_id: str, job_id: str) -> str:
    return f"{jobs.job_dir(story_id, job_id)}/cancel.json"


def cancel(private: Storage, story_id: str, job_id: str, reason: str = "canceled by request") -> bool:
    """Mark the job canceled (durably). False when it had already finished: nothing to cancel."""
    if jobs.read_done(private, story_id, job_id):
        return False
    private.replace(cancel_key(story_id, job_id), json.dumps({
        "job": job_id, "reason": reason, "canceled_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }, ensure_ascii=False).encode("utf-8"), content_type="application/json", cache_control=NO_CACHE)
    return True


def is_canceled(private: Storage, story_id: str, job_id: str) -> bool:
    return private.exists(cancel_key(story_id, job_id))


def _cancel_reason(private: Storage, job: jobs.Job) -> str:
    try:
        data = json.loads(private.get_bytes(cancel_key(job.story_id, job.id)))
    except (StorageError, ValueError):
        return "canceled"
    return str(data.get("reason", "canceled")) if isinstance(data, dict) else "canceled"
