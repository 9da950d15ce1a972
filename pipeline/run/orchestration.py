"""What a job is and what happens next: one description of the work for every executor.

A job is one submission of a story, kept durably in the private area (:mod:`pipeline.run.jobs`:
the job record, one result per asset, ``done.json``). This module decides, from those records alone:

- which assets are still to do (no recorded result) and in what order (biggest raw file first);
- when the manifest is due (every asset recorded, or the job canceled);
- how the job is finished (every object the results name checked by SHA-256; damaged or missing
  ones send their assets round again; a later job's manifest is kept; else the manifest is
  written, then ``done.json``);
- what a re-run means (an operator's request: a marker per asset in the job's record area, the
  asset's result dropped, the job open again; the asset is rendered again, for one preset or all
  of its presets, without reusing the current manifest's renditions of it, on keys of its own (a
  generation, :func:`asset_generations`), and the manifest goes to its next version even when the
  bytes come out the same) and what a cancel means (a marker
  in the job's record area: assets not started are not started, running ones are stopped by
  :mod:`pipeline.run.stopping`, the story's manifest is not replaced, the job ends ``canceled``).

Progress goes out as :class:`JobEvent`, built here for every executor. The executors (the embedded
process pool, :mod:`pipeline.run.embedded`; the Celery tasks in ``workers``) decide only how a
unit of work is run and how events travel.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pipeline.errors import InvalidPreset, PipelineError, StorageError
from pipeline.model import manifest
from pipeline.model.keys import asset_id
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
    """Record what one asset came to (its manifest entry, and how it got there). ``attempts``
    counts this round's executions; the result counts every execution of the asset in the job
    (:func:`executions`)."""
    result = jobs.AssetResult(
        order=order, entry=outcome.entry, attempts=executions(private, job, order, attempts),
        seconds=round(outcome.seconds, 2),
        worker=worker, rendered=outcome.rendered, reused=outcome.reused,
        diagnostics=outcome.diagnostics)
    jobs.write_asset_result(private, job.story_id, job.id, result)
    return result


def record_failure(private: Storage, job: jobs.Job, order: int, entry: dict[str, Any],
                   attempts: int = 1, worker: str = "") -> jobs.AssetResult:
    """Record an asset that failed outside ``process_asset`` (a crashed worker, a poison file):
    ``entry`` is its failed entry (:func:`pipeline.run.asset.failed_entry`)."""
    result = jobs.AssetResult(order=order, entry=entry, attempts=executions(private, job, order, attempts),
                              worker=worker)
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
    (:func:`render_again`). A job with re-run markers writes the next manifest version even when
    nothing changed (an operator asked for it); the markers go once the job is finished."""
    done = jobs.read_done(private, job.story_id, job.id)
    if done:
        return Finished(status=str(done["status"]), version=int(done.get("manifest_version", 0)),
                        superseded=bool(done.get("superseded")), already=True)
    if is_canceled(private, job.story_id, job.id):
        current = manifest.read_current(public, job.story_id)
        version = int(current["version"]) if current else 0
        _clear_reruns(private, job)
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
        _clear_reruns(private, job)
        jobs.mark_done(private, job.story_id, job.id, status, version, superseded=True)
        return Finished(status=status, version=version, superseded=True)
    written = manifest.write(public, job.story, entries, job.id, force=bool(reruns(private, job)))
    status = str(written.document["status"])
    _clear_reruns(private, job)
    jobs.mark_done(private, job.story_id, job.id, status, written.version)
    announce.job_finished(public, private, job.story_id, job.id, status, written)   # never raises
    return Finished(status=status, version=written.version, written=written)


def render_again(private: Storage, job: jobs.Job, orders: Iterable[int]) -> None:
    """Send these assets round again within the job (their objects did not check out): their
    results are dropped, so they run again before the manifest is due."""
    for order in orders:
        jobs.drop_asset_result(private, job.story_id, job.id, order)


class RerunRefused(PipelineError):
    """A re-run that cannot be done now (the job runs, or a later job of the story stands)."""

    code = "conflict"


@dataclass(frozen=True)
class Rerun:
    """An operator's request to render one asset of a finished job again."""

    order: int
    preset: str | None
    """Only this preset's renditions are made anew (the others may be reused); None: all."""
    previous_attempts: int
    """Executions of the asset in the job before this re-run (its result's ``attempts``)."""
    id: str
    """Tells this re-run from earlier ones (the cluster counts each one's attempts apart)."""
    requested_at: str


def rerun_key(story_id: str, job_id: str, order: int) -> str:
    return f"{jobs.job_dir(story_id, job_id)}/rerun/{order:04d}.json"


def rerun(private: Storage, job: jobs.Job, orders: Iterable[int], preset: str | None = None) -> list[Rerun]:
    """Re-run assets of a finished job: each is rendered again (``preset``: only that preset's
    renditions; else all of the asset's), none of its renditions in the current manifest is
    reused, and the manifest goes to its next version even when the bytes come out the same.

    Durable: a marker per asset (``jobs/<job>/rerun/<order>.json``) that both executors read when
    they build the asset's work (:func:`reusable`) and :func:`finish` clears; then the asset's
    result, the cancel marker and ``done.json`` are dropped, and the executor runs what is left of
    the job as it runs a new one. With no ``orders`` a canceled job runs again.

    Raises :class:`RerunRefused` while the job runs or when a later job of the story stands (its
    manifest would be kept), :class:`InvalidPreset` for a preset the asset does not use, and
    :class:`PipelineError` (code ``not-found``) for an asset the job does not have.
    """
    wanted = list(dict.fromkeys(orders))
    for order in wanted:
        if not 1 <= order <= len(job.assets):
            raise PipelineError(f"job {job.id} has {len(job.assets)} assets: there is no asset {order}",
                                code="not-found")
        if preset is not None:
            used = job.story.asset_presets(job.story.assets[order - 1])
            if preset not in used:
                raise InvalidPreset(f"asset {order} is not rendered with preset {preset!r}"
                                    f" (its presets: {', '.join(used)})")
    if not jobs.read_done(private, job.story_id, job.id):
        raise RerunRefused(f"job {job.id} is still running; re-run an asset once it is finished")
    for other in jobs.story_jobs(private, job.story_id):
        if jobs.later(other, job.id):
            done = jobs.read_done(private, job.story_id, other)
            if done is None or done.get("status") != "canceled":
                raise RerunRefused(f"a later job of the story ({other}) stands: re-run the asset there")
    made = []
    for order in wanted:
        previous = jobs.read_asset_result(private, job.story_id, job.id, order)
        marker = Rerun(order=order, preset=preset, previous_attempts=previous.attempts if previous else 0,
                       id=secrets.token_hex(4), requested_at=datetime.now(UTC).isoformat(timespec="seconds"))
        private.replace(rerun_key(job.story_id, job.id, order),
                        json.dumps(vars(marker), ensure_ascii=False).encode("utf-8"),
                        content_type="application/json", cache_control=NO_CACHE)
        made.append(marker)
    render_again(private, job, wanted)
    private.delete(cancel_key(job.story_id, job.id))
    private.delete(jobs.done_key(job.story_id, job.id))
    return made


def read_rerun(private: Storage, job: jobs.Job, order: int) -> Rerun | None:
    """The asset's pending re-run, if any (a damaged marker reads as a re-run of every preset)."""
    key = rerun_key(job.story_id, job.id, order)
    if not private.exists(key):
        return None
    try:
        raw = private.get_bytes(key)
    except StorageError:
        raw = b""
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        data = {}
    preset, attempts, marker_id = data.get("preset"), data.get("previous_attempts"), data.get("id")
    if not (isinstance(marker_id, str) and _MARKER_ID.fullmatch(marker_id)):
        marker_id = "damaged-" + hashlib.sha256(raw).hexdigest()[:8]   # still one id per marker
    return Rerun(order=order, preset=preset if isinstance(preset, str) else None,
                 previous_attempts=attempts if type(attempts) is int and attempts >= 0 else 0,
                 id=marker_id, requested_at=str(data.get("requested_at", "")))


_MARKER_ID = re.compile(r"[0-9a-f]{1,16}")


def reruns(private: Storage, job: jobs.Job) -> list[int]:
    """The assets of the job with a pending re-run, from one listing."""
    prefix = f"{jobs.job_dir(job.story_id, job.id)}/rerun/"
    found = []
    for key in private.list(prefix):
        name = key[len(prefix):]
        if len(name) == 9 and name.endswith(".json") and name[:4].isdigit():
            found.append(int(name[:4]))
    return sorted(found)


def _clear_reruns(private: Storage, job: jobs.Job) -> None:
    for order in reruns(private, job):
        private.delete(rerun_key(job.story_id, job.id, order))


def reusable(private: Storage, job: jobs.Job, order: int,
             known: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The renditions (by key) the asset may reuse: ``known`` (the current manifest's), less the
    asset's own renditions of its re-run's preset (all of them without one) when it is re-run."""
    pending = read_rerun(private, job, order)
    if pending is None:
        return known
    prefix = f"renditions/{asset_id(job.assets[order - 1].sha256)}/"

    def renewed(key: str, entry: dict[str, Any]) -> bool:
        return key.startswith(prefix) and (
            pending.preset is None or str(entry.get("preset", "")).split("@")[0] == pending.preset)

    return {key: entry for key, entry in known.items() if not renewed(key, entry)}


@dataclass(frozen=True)
class Generations:
    """Under which generations an asset's renditions are planned (:mod:`pipeline.plan.generations`)."""

    renew: dict[str, str]
    """The pending re-run's generation by preset name (the re-run's preset, else all of the
    asset's): their renditions are made on keys no manifest version names yet."""
    earlier: tuple[str, ...]
    """Earlier re-runs' generations of the asset in the story, oldest first: the current
    manifest's renditions of the asset may have been made under one of them."""


def generations_prefix(story_id: str, sha256: str) -> str:
    return f"stories/{story_id}/generations/{asset_id(sha256)}/"


def asset_generations(private: Storage, job: jobs.Job, order: int) -> Generations:
    """The asset's generations for its work item (both executors build it with this).

    A pending re-run renders under the generation ``<job id>.<marker id>``, recorded here (once,
    in the private area: ``stories/<story>/generations/<asset id>/<generation>.json``) before any
    of its renditions is stored, so later jobs of the story find it among ``earlier`` and plan
    the renditions the manifest names under it again (and reuse them)."""
    item = job.assets[order - 1]
    prefix = generations_prefix(job.story_id, item.sha256)
    renew: dict[str, str] = {}
    pending = read_rerun(private, job, order)
    if pending is not None:
        generation = f"{job.id}.{pending.id}"
        private.create(f"{prefix}{generation}.json", json.dumps({
            "job": job.id, "order": order, "preset": pending.preset, "rerun": pending.id,
        }, ensure_ascii=False).encode("utf-8"), content_type="application/json")
        names = [pending.preset] if pending.preset else job.story.asset_presets(job.story.assets[order - 1])
        renew = dict.fromkeys(names, generation)
    recorded = sorted(key[len(prefix):-len(".json")] for key in private.list(prefix)
                      if key.endswith(".json") and "/" not in key[len(prefix):])
    return Generations(renew=renew, earlier=tuple(g for g in recorded if g not in renew.values()))


def executions(private: Storage, job: jobs.Job, order: int, attempts: int) -> int:
    """Executions of the asset in the job: ``attempts`` of this round, plus those before a
    pending re-run of it."""
    pending = read_rerun(private, job, order)
    return attempts + (pending.previous_attempts if pending else 0)


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
