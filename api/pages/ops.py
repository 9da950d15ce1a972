"""The operator's console (``/ops``): queues and workers, the stories whose latest job runs, failed
or came out partial (each failing file with its step, its reason and, for a failed render, the
ffmpeg command and the tail of its log), webhook deliveries and their failures, and a link to
Flower when one is configured.

The page is rendered here, whole, from the same functions the API's routes use; its script
(``static/ops.js``) asks for the page again every few seconds and swaps in the panels that changed
(so the words and the escaping live in one template), and makes the operators' changes (re-run,
cancel, replay) through the API with the CSRF token. Operators only: any other role gets the 403
page, and the API under it checks the role again.
"""

from __future__ import annotations

import logging
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from api import records
from api.auth import Principal
from api.pages import i18n
from api.pages.access import reader
from api.pages.render import language, page
from api.routes.operations import QueueInfo, WorkerInfo
from api.routes.webhooks import DeliveryOut, list_deliveries, list_endpoints
from api.service import Service
from api.status import AssetStatus, JobStatus, job_status
from pipeline.errors import PipelineError
from pipeline.redaction import redact
from pipeline.run import jobs

log = logging.getLogger("storymedia.api.pages.ops")

router = APIRouter(include_in_schema=False)

JOBS_LOOKED_AT = 60
"""The stories with the newest latest jobs that the console reads each time (the rest are older)."""
RECENT_SHOWN = 8
"""Finished jobs (complete, canceled) listed under "recently finished"."""
DELIVERIES_SHOWN = 8
"""Deliveries shown per webhook endpoint, newest first."""
REFRESH_SECONDS = 5
"""How often the page refreshes itself while it is visible."""

ACTIVE = ("queued", "running")
TROUBLE = ("failed", "partial")

REFUSALS = frozenset(i18n.REASONS) - {"timeout", "time-limit", "out-of-memory", "canceled"}
"""Failure codes found while checking a file (the producer's to fix); every other code failed in
the rendering (or storing) of a file the check accepted."""


@dataclass
class JobView:
    """One story's latest job as the console shows it."""

    story: str
    title: str
    desk: str
    breaking: bool
    status: JobStatus
    failures: list[AssetStatus] = field(default_factory=list)

    @property
    def done_count(self) -> int:
        return sum(1 for asset in self.status.assets if asset.state == "done")


def failing_step(asset: AssetStatus) -> str:
    """``check``, ``render`` or ``store``: the step the file failed at."""
    if asset.diagnostics is not None:
        return "render"
    if asset.code == "storage":
        return "store"
    return "check" if asset.code in REFUSALS else "render"


def shell_command(command: list[str]) -> str:
    """The failing command as an operator would paste it into a shell."""
    return shlex.join(command)


def age_words(lang: str, seconds: float) -> str:
    """``3 phút 12 giây`` / ``3 min 12 s``: a queue's oldest message's wait."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if hours:
        parts.append(i18n.message(lang, "ops.age.hours", n=hours))
    if minutes or hours:
        parts.append(i18n.message(lang, "ops.age.minutes", n=minutes))
    if not hours:
        parts.append(i18n.message(lang, "ops.age.seconds", n=secs))
    return " ".join(parts)


def _latest_jobs(svc: Service) -> list[tuple[dict[str, Any], str]]:
    """(catalog entry, latest job id) of the stories with the newest latest jobs (job ids sort by
    their submission time)."""
    found = [(entry, str(entry["latest_job"])) for entry in records.catalog(svc.backend.private)
             if isinstance(entry.get("latest_job"), str) and jobs.JOB_ID.fullmatch(entry["latest_job"])]
    found.sort(key=lambda item: item[1], reverse=True)
    return found[:JOBS_LOOKED_AT]


def job_views(svc: Service) -> tuple[list[JobView], list[JobView], list[JobView], list[str]]:
    """Active, troubled and recently finished jobs, and the stories whose job could not be read."""
    active: list[JobView] = []
    trouble: list[JobView] = []
    recent: list[JobView] = []
    unreadable: list[str] = []
    for entry, job_id in _latest_jobs(svc):
        story_id = str(entry["id"])
        try:
            status = job_status(svc.backend, story_id, job_id, diagnostics=True)
        except PipelineError as exc:
            log.warning("ops: job %s of %s cannot be read: %s", job_id, story_id, exc.reason)
            unreadable.append(story_id)
            continue
        view = JobView(story=story_id, title=str(entry.get("title", story_id)),
                       desk=str(entry.get("desk", "")), breaking=bool(entry.get("breaking")), status=status,
                       failures=[a for a in status.assets if a.state == "failed"])
        if status.state in TROUBLE:
            trouble.append(view)
        elif status.state in ACTIVE or not status.final:
            active.append(view)
        elif len(recent) < RECENT_SHOWN:
            recent.append(view)
    return active, trouble, recent, unreadable


@dataclass
class EndpointView:
    id: str
    url: str
    events: list[str]
    enabled: bool
    disabled_reason: str
    description: str
    deliveries: list[DeliveryOut]
    failing: int


def webhook_views(svc: Service, who: Principal) -> list[EndpointView]:
    """Every endpoint with its newest deliveries, as GET /v1/webhooks and its deliveries answer."""
    views = []
    for endpoint in list_endpoints(svc, who).webhooks:
        out = list_deliveries(endpoint.id, svc, who, cursor=None, limit=DELIVERIES_SHOWN).deliveries
        views.append(EndpointView(
            id=endpoint.id, url=redact(endpoint.url), events=list(endpoint.events), enabled=endpoint.enabled,
            disabled_reason=endpoint.disabled_reason, description=endpoint.description, deliveries=out,
            failing=sum(1 for d in out if d.state == "failed" or (d.state == "pending" and d.attempts))))
    return views


def last_attempt(delivery: DeliveryOut) -> str:
    """The newest attempt's answer: ``HTTP 500`` or why none came (English, technical)."""
    if not delivery.attempts:
        return ""
    newest = delivery.attempts[-1]
    return f"HTTP {newest.status}" if newest.status is not None else redact(newest.error or "")


def _probe(what: str, call: Callable[[], list[dict[str, Any]]],
           model: type[QueueInfo] | type[WorkerInfo]) -> tuple[list[Any], str]:
    """The backend's answer as GET /v1/queues or /v1/workers gives it, or why there is none (the
    broker is down, ...), redacted."""
    try:
        return [model(**row) for row in call()], ""
    except PipelineError as exc:
        log.warning("ops: %s: %s", what, redact(exc.reason))
        return [], redact(exc.reason)


def flower_url(svc: Service) -> str:
    """STORYMEDIA_FLOWER_URL when it is an http(s) URL (nothing else is ever linked)."""
    url = str(svc.config.env.get("STORYMEDIA_FLOWER_URL", "")).strip()
    return url if url.startswith(("https://", "http://")) and " " not in url and "@" not in url else ""


@router.get("/ops")
def console(request: Request) -> Response:
    """The console; its script asks for it again to refresh the panels."""
    who = reader(request, "operator")
    svc: Service = request.app.state.service
    lang = language(request)
    queues, queues_error = _probe("queues", svc.backend.queues, QueueInfo)
    workers, workers_error = _probe("workers", svc.backend.workers, WorkerInfo)
    active, trouble, recent, unreadable = job_views(svc)
    words = {key: text for key, text in i18n.catalog(lang)["messages"].items() if key.startswith("ops.js.")}
    return page(request, "ops.html", who=who, mode=svc.backend.mode, queues=queues, queues_error=queues_error,
                workers=workers, workers_error=workers_error, active=active, trouble=trouble, recent=recent,
                unreadable=unreadable, webhooks=webhook_views(svc, who), flower=flower_url(svc),
                refreshed=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                refresh_seconds=REFRESH_SECONDS, words=words, failing_step=failing_step,
                shell_command=shell_command, age=lambda seconds: age_words(lang, seconds),
                last_attempt=last_attempt)
