"""Stories: create or replace one from JSON (the story file's model, validated by the same code),
list them, read one."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, Field

from api import records
from api.auth import Principal, check_desk, principal, require
from api.problems import COMMON, Problem, documented
from api.service import Service, service
from pipeline.model.story import Story
from pipeline.run import jobs

router = APIRouter(prefix="/v1", tags=["stories"], responses=COMMON)

StoryId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,127}$", max_length=128,
                              description="The story's slug")]


class FileState(BaseModel):
    file: str
    uploaded: bool
    sha256: str | None = None
    bytes: int | None = None


class StoryOut(BaseModel):
    id: str
    title: str
    desk: str
    breaking: bool
    created: str
    updated: str
    latest_job: str | None = None
    state: str | None = Field(default=None, description="The latest job's state (null: never submitted)")
    files: list[FileState] = Field(default_factory=list)
    story: dict[str, Any] = Field(description="The story as stored (NFC-normalised)")


class StoryPage(BaseModel):
    stories: list[StoryOut]
    next_cursor: str | None = None


def job_state(svc: Service, story_id: str, job_id: str | None) -> str | None:
    """A job's state: ``done.json`` when it is finished, else its live state, else queued."""
    if not job_id:
        return None
    done = jobs.read_done(svc.backend.private, story_id, job_id)
    if done:
        return str(done.get("status", "complete"))
    live = svc.backend.live(job_id)
    if live is not None and live.state != "stalled":
        return live.state
    return "running" if jobs.read_asset_results(svc.backend.private, story_id, job_id) else "queued"


def story_out(svc: Service, record: records.StoryRecord, with_files: bool = True) -> StoryOut:
    private = svc.backend.private
    entry = records.read_catalog(private, record.id) or {}
    latest = entry.get("latest_job") if isinstance(entry.get("latest_job"), str) else None
    files = []
    if with_files:
        uploaded = records.attached(private, record.id)
        for name in records.story_files(record.story):
            sha, size = uploaded.get(name, (None, None))
            files.append(FileState(file=name, uploaded=sha is not None, sha256=sha, bytes=size))
    return StoryOut(id=record.id, title=record.story.story.title, desk=record.desk,
                    breaking=record.story.story.breaking, created=record.created, updated=record.updated,
                    latest_job=latest, state=job_state(svc, record.id, latest), files=files,
                    story=record.story.model_dump(mode="json"))


def load(svc: Service, story_id: str, who: Principal) -> records.StoryRecord:
    """The story, if it exists and the caller's desk may see it (404 / 403)."""
    record = records.read_story(svc.backend.private, story_id)
    if record is None:
        raise Problem("not-found", f"no story {story_id!r}; create it with POST /v1/stories")
    check_desk(who, record.desk)
    return record


@router.post("/stories", status_code=201, response_model=StoryOut,
             responses={**documented("conflict"), 200: {"model": StoryOut, "description": "Replaced"}})
def create_story(story: Story, response: Response, svc: Annotated[Service, Depends(service)],
                 who: Annotated[Principal, Depends(require("producer", "operator"))],
                 desk: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$",
                                                   description="Operators: the desk the story belongs to"
                                                               " (default: the operator's own)")] = None,
                 ) -> StoryOut:
    """Create a story, or replace it (same id): 201 when new, 200 when replaced. A producer's
    story belongs to their desk; uploaded files stay attached by name."""
    backend = svc.backend
    unknown = sorted({name for asset in story.assets for name in story.asset_presets(asset)}
                     - set(backend.presets))
    if unknown:
        errors = [("story.presets" if name in story.story.presets else "assets", f"unknown preset {name!r}")
                  for name in unknown]
        raise Problem("invalid", f"unknown presets: {', '.join(unknown)} (known: "
                      f"{', '.join(sorted(backend.presets))})", errors=errors)
    if who.role == "producer" and desk not in (None, who.desk):
        raise Problem("forbidden", "producers create stories for their own desk only")
    previous = records.read_story(backend.private, story.story.id)
    if previous is not None:
        check_desk(who, previous.desk, "a story with this id")
    record = records.save_story(backend.private, story, desk or who.desk, who.id, previous)
    if previous is not None:
        response.status_code = 200
    response.headers["Location"] = f"/v1/stories/{record.id}"
    return story_out(svc, record)


def _cursor(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        decoded = base64.urlsafe_b64decode(value.encode("ascii") + b"==").decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise Problem("invalid", "cursor is not one this service gave",
                      errors=[("cursor", "unknown")]) from None
    return decoded


@router.get("/stories", response_model=StoryPage)
def list_stories(svc: Annotated[Service, Depends(service)], who: Annotated[Principal, Depends(principal)],
                 state: Annotated[Literal["none", "queued", "running", "complete", "partial", "failed",
                                          "canceled"] | None, Query(description="The latest job's state"
                                                                    " (none: never submitted)")] = None,
                 desk: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")] = None,
                 since: Annotated[str | None, Query(max_length=40, json_schema_extra={"format": "date-time"},
                                                    description="Updated at or after (ISO 8601)")] = None,
                 breaking: bool | None = None,
                 cursor: Annotated[str | None, Query(max_length=200)] = None,
                 limit: Annotated[int, Query(ge=1, le=200)] = 50) -> StoryPage:
    """Stories by id, newest filters first; a producer sees their desk's only."""
    after = _cursor(cursor)
    since_time = _instant(since)
    if who.role == "producer":
        if desk not in (None, who.desk):
            raise Problem("forbidden", "producers see their own desk's stories only")
        desk = who.desk
    found: list[StoryOut] = []
    more = None
    for entry in records.catalog(svc.backend.private):
        if after is not None and entry["id"] <= after:
            continue
        if desk is not None and entry.get("desk") != desk:
            continue
        if breaking is not None and bool(entry.get("breaking")) != breaking:
            continue
        if since_time is not None and not _at_or_after(entry.get("updated"), since_time):
            continue
        record = records.read_story(svc.backend.private, entry["id"])
        if record is None:
            continue
        out = story_out(svc, record, with_files=False)
        if state is not None and (out.state or "none") != state:
            continue
        if len(found) == limit:
            more = found[-1].id
            break
        found.append(out)
    next_cursor = base64.urlsafe_b64encode(more.encode()).decode().rstrip("=") if more else None
    return StoryPage(stories=found, next_cursor=next_cursor)


def _instant(text: str | None) -> datetime | None:
    """An ISO 8601 time (pydantic's lax datetimes also took numbers such as 0.5)."""
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise Problem("invalid", "since must be an ISO 8601 time such as 2026-12-03T08:00:00+07:00",
                      errors=[("since", "not an ISO 8601 time")]) from None


def _at_or_after(stamp: Any, since: datetime) -> bool:
    try:
        when = datetime.fromisoformat(str(stamp))
    except ValueError:
        return False
    if since.tzinfo is None:
        since = since.replace(tzinfo=when.tzinfo)
    return when >= since


@router.get("/stories/{story_id}", response_model=StoryOut, responses=documented("not-found"))
def get_story(story_id: StoryId, svc: Annotated[Service, Depends(service)],
              who: Annotated[Principal, Depends(principal)]) -> StoryOut:
    return story_out(svc, load(svc, story_id, who))
