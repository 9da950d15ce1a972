"""The producer's page (``/``): a new story, or one of the desk's opened with ``/?story=<id>``.

The page is a form over the API: its script (``static/producer.js``) saves the story with
``POST /v1/stories``, uploads the files with tus (resumable, SHA-256 declared), submits the job
and follows it over Server-Sent Events. The server side only reads: the desk's stories, the
presets, the opened story with its files and latest job, and the words for the script.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from api import records
from api.auth import session_principal
from api.pages import i18n
from api.pages.access import not_found, reader, visible_catalog
from api.pages.render import language, page
from api.routes.stories import job_state, story_out
from api.routes.uploads import max_upload_bytes
from api.service import Service
from pipeline.model.story import SLUG

router = APIRouter(include_in_schema=False)

RECENT = 30
"""Stories of the desk listed beside the form (the full list is ``/stories``)."""

CHUNK_BYTES = 32 << 20
"""Bytes a browser sends in one PATCH. A dropped PATCH keeps what reached the service, so this
only bounds what one request holds; ``svc.extras["upload_chunk_bytes"]`` overrides it (tests)."""

ZONES = ("Asia/Ho_Chi_Minh", "Asia/Bangkok", "Asia/Singapore", "Asia/Shanghai", "Asia/Tokyo",
         "Asia/Seoul", "Australia/Sydney", "Europe/London", "Europe/Paris", "Europe/Berlin",
         "Europe/Moscow", "America/New_York", "America/Los_Angeles", "UTC")
"""Time zones offered for the publication time (Vietnam's first, the default)."""


def desk_stories(svc: Service, who: Any) -> list[dict[str, Any]]:
    """The stories ``who`` may see, most recently updated first: id, title, state, breaking."""
    found = []
    for entry in visible_catalog(svc.backend.private, who, RECENT):
        record = records.read_story(svc.backend.private, entry["id"])
        if record is None:
            continue
        latest = entry.get("latest_job") if isinstance(entry.get("latest_job"), str) else None
        found.append({"id": record.id, "title": record.story.story.title,
                      "breaking": record.story.story.breaking, "updated": record.updated,
                      "state": job_state(svc, record.id, latest) or "draft"})
    return found


def preset_choices(svc: Service, lang: str) -> list[dict[str, str]]:
    """The service's presets with a line each for the producer (the page's words when it has
    them, else the preset's own description)."""
    choices = []
    for name in sorted(svc.backend.presets):
        key = f"producer.preset.{name}"
        described = i18n.message(lang, key)
        choices.append({"name": name, "label": described if described != key else
                        (svc.backend.presets[name].description or name)})
    return choices


@router.get("/")
def producer_page(request: Request) -> Response:
    """The producer's page; an editor, who has no form here, is sent to the list of stories."""
    early = session_principal(request)
    if early is not None and early.role == "editor":
        return RedirectResponse("/stories", status_code=303)
    who = reader(request, "producer", "operator")
    svc: Service = request.app.state.service
    lang = language(request)
    opened: dict[str, Any] | None = None
    wanted = request.query_params.get("story")
    if wanted is not None:
        record = records.read_story(svc.backend.private, wanted) if SLUG.fullmatch(wanted) else None
        if record is None:
            return not_found(request, who)
        if not who.may_see_desk(record.desk):
            return page(request, "error.html", who=who, status=403, message_key="error.forbidden")
        opened = story_out(svc, record).model_dump(mode="json")
    setup = {
        "story": opened,
        "presets": [choice["name"] for choice in preset_choices(svc, lang)],
        "zones": list(ZONES),
        "chunk_bytes": int(svc.extras.get("upload_chunk_bytes", CHUNK_BYTES)),
        "max_bytes": max_upload_bytes(svc),
        "words": i18n.catalog(lang),
        "lang": lang,
    }
    return page(request, "producer.html", who=who, stories=desk_stories(svc, who), opened=opened,
                presets=preset_choices(svc, lang), zones=ZONES, setup=setup)
