"""A job as the API shows it: durable results from the store first, live progress for the rest.

States are the manifest's words: a job is ``queued | running | complete | partial | failed |
canceled`` (the last four final), an asset ``pending | probing | rendering | storing | done |
failed | canceled``. Progress is a percentage; an asset being rendered gets an ETA from its
progress so far (ffmpeg's frames against the clip's duration).
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, Field

from api.backend import Backend
from pipeline.redaction import redact
from pipeline.run import jobs
from pipeline.run.orchestration import STALLED


class Diagnostics(BaseModel):
    """What an operator needs to see why a render failed (operators only; credentials redacted)."""

    command: list[str] = Field(description="The ffmpeg command that failed, one argument an item")
    log_tail: str = Field(description="The end of ffmpeg's log (at most 4000 characters)")


class AssetStatus(BaseModel):
    order: int
    file: str
    state: str
    progress: float = Field(description="Percent, 0 to 100")
    eta_seconds: float | None = Field(default=None, description="Seconds left of the render")
    attempts: int = 0
    worker: str = ""
    reason: str = Field("", description="Why the file was refused or failed, for the producer")
    code: str = Field(default="", description="The refusal's or failure's code (truncated, not-media, ...):"
                                      " what the pages translate")
    retryable: bool | None = None
    renditions: int | None = None
    diagnostics: Diagnostics | None = Field(default=None, description="A failed render's command and"
                                            " log tail: for operators only (null for other roles)")


class JobStatus(BaseModel):
    id: str
    story: str
    state: str
    final: bool
    reason: str = ""
    stalled: bool = Field(False, description="Live progress stopped: the executor resumes it")
    progress: float
    submitted_at: str = ""
    finished_at: str | None = None
    manifest_version: int | None = None
    assets: list[AssetStatus]


def diagnostics_of(result: jobs.AssetResult) -> Diagnostics | None:
    """The failed render's command and log tail, redacted as the CLI shows them."""
    found = result.diagnostics
    if not isinstance(found, dict):
        return None
    command = found.get("command")
    return Diagnostics(command=[redact(str(part)) for part in command] if isinstance(command, list) else [],
                       log_tail=redact(str(found.get("log_tail", "")))[-4000:])


def _asset(item: jobs.JobAsset, live: dict[str, Any], result: jobs.AssetResult | None,
           now: float, diagnostics: bool) -> AssetStatus:
    if result is not None:
        entry = result.entry
        error = entry.get("error") or {}
        return AssetStatus(order=item.order, file=item.file, state=str(entry.get("status", "done")),
                           progress=100.0, attempts=result.attempts, worker=result.worker,
                           reason=str(error.get("reason", "")), code=str(error.get("code", "")),
                           retryable=error.get("retryable") if error else None,
                           renditions=len(entry.get("renditions", [])),
                           diagnostics=diagnostics_of(result) if diagnostics and error else None)
    state = str(live.get("state", "pending"))
    done, total = int(live.get("done", 0) or 0), int(live.get("total", 0) or 0)
    fraction = min(done / total, 1.0) if total > 0 else 0.0
    progress = {"pending": 0.0, "probing": 2.0, "storing": 95.0, "done": 100.0, "failed": 100.0,
                "canceled": 100.0}.get(state, 5.0 + 85.0 * fraction)
    eta = None
    started = live.get("started")
    if state == "rendering" and isinstance(started, int | float) and 0 < fraction < 1:
        eta = round((now - started) * (1 - fraction) / fraction, 1)
    return AssetStatus(order=item.order, file=item.file, state=state, progress=round(progress, 1),
                       eta_seconds=eta, attempts=int(live.get("attempts", 0) or 0),
                       worker=str(live.get("worker", "")), reason=str(live.get("reason", "")))


def job_status(backend: Backend, story_id: str, job_id: str, *, diagnostics: bool = False) -> JobStatus:
    """The job as the API shows it; ``diagnostics`` (operators only) adds each failed render's
    command and log tail."""
    private = backend.private
    job = jobs.read_job(private, story_id, job_id)
    results = jobs.read_asset_results(private, story_id, job_id)
    done = jobs.read_done(private, story_id, job_id)
    live = backend.live(job_id)
    now = time.time()
    assets = [_asset(item, live.assets.get(item.order, {}) if live else {}, results.get(item.order), now,
                     diagnostics)
              for item in job.assets]
    stalled = False
    if done:
        state, reason = str(done.get("status", "complete")), ""
    elif live is not None and live.state in jobs.FINAL_STATES:
        state, reason = live.state, live.reason    # the manifest is written, done.json follows
    elif live is not None and live.state != STALLED:
        state, reason = live.state, live.reason
    else:
        stalled = live is not None
        state = "running" if results else "queued"
        reason = live.reason if live is not None else ""
    if done and state == "canceled":
        assets = [a if a.state in ("done", "failed") else a.model_copy(update={"state": "canceled"})
                  for a in assets]
    progress = round(sum(a.progress for a in assets) / len(assets), 1) if assets else 0.0
    return JobStatus(id=job_id, story=story_id, state=state, final=state in jobs.FINAL_STATES and bool(done),
                     reason=reason, stalled=stalled, progress=100.0 if done else progress,
                     submitted_at=job.submitted_at,
                     finished_at=str(done.get("finished_at")) if done else None,
                     manifest_version=int(done["manifest_version"]) if done and isinstance(
                         done.get("manifest_version"), int) else None,
                     assets=assets)
