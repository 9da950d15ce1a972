"""Jobs: submit a story, follow it (status, Server-Sent Events), and the operators' re-run and
cancel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api import records
from api.auth import Principal, check_desk, principal, require
from api.problems import COMMON, Problem, documented
from api.routes.stories import StoryId, load
from api.service import Service, service
from api.status import JobStatus, job_status
from pipeline.errors import StorageError
from pipeline.run import jobs, orchestration

router = APIRouter(prefix="/v1", tags=["jobs"], responses=COMMON)

JobId = Annotated[str, Path(pattern=r"^\d{8}-\d{6}-[0-9a-f]{6}$", description="A job id")]

HEARTBEAT = 15.0
"""Seconds between comments on a quiet event stream (proxies close silent connections)."""


class SubmittedJob(BaseModel):
    id: str
    story: str
    attached: bool = Field(description="The same story with the same files was running: this is that job")
    status: str = Field(description="URL of the job's status")
    events: str = Field(description="URL of the job's Server-Sent Events")


def find(svc: Service, job_id: str, who: Principal) -> str:
    """The story id of a job the caller may see (404 / 403)."""
    story_id = records.story_of_job(svc.backend.private, job_id)
    if story_id is None:
        raise Problem("not-found", f"no job {job_id}")
    record = records.read_story(svc.backend.private, story_id)
    if who.role == "producer":
        if record is None:
            raise Problem("forbidden", "this job's story was not made through the service")
        check_desk(who, record.desk, "this job's story")
    return story_id


@router.post("/stories/{story_id}/jobs", status_code=202, response_model=SubmittedJob,
             responses={**documented("not-found", "missing-files"),
                        200: {"model": SubmittedJob, "description": "The same request was made before"}})
def submit(story_id: StoryId, response: Response, svc: Annotated[Service, Depends(service)],
           who: Annotated[Principal, Depends(require("producer", "operator"))],
           idempotency_key: Annotated[str | None, Header(max_length=200, pattern=r"^[\x21-\x7e]+$")] = None,
           ) -> SubmittedJob:
    """Submit the story with its uploaded files: 202 with the job. The same story and files while
    a job of it runs attach to that job; a retried POST with the same ``Idempotency-Key`` answers
    the job it made (200)."""
    record = load(svc, story_id, who)
    private = svc.backend.private
    if idempotency_key:
        earlier = records.remembered_job(private, who.id, idempotency_key)
        if earlier is not None:
            if earlier.get("story") != story_id:
                raise Problem("conflict", "this Idempotency-Key was used for another story")
            response.status_code = 200
            return _submitted(story_id, str(earlier["job"]), attached=True)
    uploaded = records.attached(private, story_id)
    missing = [name for name in records.story_files(record.story) if name not in uploaded]
    if missing:
        raise Problem("missing-files", f"upload these first (POST /v1/uploads): {', '.join(missing)}",
                      errors=[("files", name) for name in missing])
    staged = jobs.staged_uploads(record.story, svc.backend.presets, uploaded)
    result = svc.backend.submit(staged, record.story.story.breaking)
    records.set_latest_job(private, story_id, result.job)
    if idempotency_key:
        records.remember_job(private, who.id, idempotency_key, story_id, result.job)
    response.headers["Location"] = f"/v1/jobs/{result.job}"
    return _submitted(story_id, result.job, result.attached)


def _submitted(story_id: str, job_id: str, attached: bool) -> SubmittedJob:
    return SubmittedJob(id=job_id, story=story_id, attached=attached, status=f"/v1/jobs/{job_id}",
                        events=f"/v1/jobs/{job_id}/events")


@router.get("/jobs/{job_id}", response_model=JobStatus, responses=documented("not-found"))
def get_job(job_id: JobId, svc: Annotated[Service, Depends(service)],
            who: Annotated[Principal, Depends(principal)]) -> JobStatus:
    """The job's state, each asset's state, attempts, progress and ETA, and refusal reasons; for an
    operator, each failed render's ffmpeg command and log tail (``diagnostics``)."""
    story_id = find(svc, job_id, who)
    return job_status(svc.backend, story_id, job_id, diagnostics=who.role == "operator")


@router.get("/jobs/{job_id}/events", responses={**documented("not-found"), 200: {
    "content": {"text/event-stream": {}}, "description": "`event: job` with the job's status as"
    " JSON each time it changes; the stream ends after the final state"}})
async def job_events(job_id: JobId, request: Request, svc: Annotated[Service, Depends(service)],
                     who: Annotated[Principal, Depends(principal)]) -> StreamingResponse:
    """Server-Sent Events of the job's status as it changes, until it is final."""
    story_id = await run_in_threadpool(find, svc, job_id, who)
    every = float(svc.extras.get("events_every", 0.5))

    async def stream() -> AsyncIterator[bytes]:
        last, sent_at, number = "", time.monotonic(), 0
        yield b"retry: 2000\n\n"
        while not await request.is_disconnected():
            try:
                status = await run_in_threadpool(job_status, svc.backend, story_id, job_id)
            except StorageError:   # the store hiccuped: say nothing, look again
                status = None
            if status is not None:
                text = status.model_dump_json()
                if text != last:
                    number += 1
                    last, sent_at = text, time.monotonic()
                    yield f"id: {number}\nevent: job\ndata: {text}\n\n".encode()
                    if status.final:
                        return
            if time.monotonic() - sent_at > HEARTBEAT:
                sent_at = time.monotonic()
                yield b": still here\n\n"
            await asyncio.sleep(every)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


class Operation(BaseModel):
    job: str
    story: str
    done: bool
    detail: str


class RerunRequest(BaseModel):
    preset: str | None = Field(default=None, max_length=64, pattern=r"^[a-z][a-z0-9-]*$",
                               description="Only this preset's renditions (default: all of the asset's)")


@router.post("/jobs/{job_id}/assets/{order}/rerun", status_code=202, response_model=Operation,
             responses=documented("not-found", "conflict"))
def rerun(job_id: JobId, order: Annotated[int, Path(ge=1, le=500)], svc: Annotated[Service, Depends(service)],
          who: Annotated[Principal, Depends(require("operator"))], body: RerunRequest | None = None,
          ) -> Operation:
    """Render one asset of a finished job again (one preset, or all of its), reusing none of its
    current renditions of that preset; the manifest goes to its next version even when the bytes
    come out the same. 409 while the job runs, or when a later job of the story stands."""
    story_id = find(svc, job_id, who)
    job = jobs.read_job(svc.backend.private, story_id, job_id)
    if order > len(job.assets):
        raise Problem("not-found", f"job {job_id} has {len(job.assets)} assets")
    preset = body.preset if body else None
    if preset is not None and preset not in job.story.asset_presets(job.story.assets[order - 1]):
        raise Problem("invalid", f"asset {order} is not rendered with preset {preset!r}",
                      errors=[("preset", "not one of the asset's presets")])
    if not jobs.read_done(svc.backend.private, story_id, job_id):
        raise Problem("conflict", "the job is still running; re-run an asset once it is finished")
    try:
        orchestration.rerun(svc.backend.private, job, [order], preset=preset)
    except orchestration.RerunRefused as exc:
        raise Problem("conflict", exc.reason) from None
    svc.backend.resume(job)
    return Operation(job=job_id, story=story_id, done=True,
                     detail=f"asset {order} ({job.assets[order - 1].file}) is rendered again"
                            + (f" with {preset}" if preset else ""))


@router.post("/jobs/{job_id}/cancel", status_code=202, response_model=Operation,
             responses={**documented("not-found"), 200: {
                 "model": Operation, "description": "The job had already finished: nothing to cancel"
                 " (`done` is false)"}})
def cancel(job_id: JobId, response: Response, svc: Annotated[Service, Depends(service)],
           who: Annotated[Principal, Depends(require("operator"))]) -> Operation:
    """Cancel the job: running ffmpeg is stopped (within about a second), nothing half-stored is
    kept, nothing more starts, the story's manifest is not replaced and the job ends ``canceled``
    (202, ``done`` true; follow the job to its final state). A job already finished is left as it
    is: 200 with ``done`` false and its final state in ``detail`` (canceling twice is harmless)."""
    story_id = find(svc, job_id, who)
    job = jobs.read_job(svc.backend.private, story_id, job_id)
    if not orchestration.cancel(svc.backend.private, story_id, job_id, f"canceled by {who.role} {who.id}"):
        finished = jobs.read_done(svc.backend.private, story_id, job_id) or {}
        response.status_code = 200
        return Operation(job=job_id, story=story_id, done=False,
                         detail=f"the job had already finished ({finished.get('status', 'final')})")
    svc.backend.stop_job(job)
    return Operation(job=job_id, story=story_id, done=True, detail="the job is being canceled")

