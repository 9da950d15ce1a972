"""``GET /metrics``: the service's figures in the Prometheus text format (prometheus_client).

Each app has its own registry (never the process's default one: tests make many apps). No label
names a story, a job, a desk or a person: labels are presets, outcomes, asset kinds, states,
queues, route templates and status classes, all bounded sets. So the page needs no token (a
Prometheus scrape has none); what it shows is counts and durations.

Where each figure comes from:

- ``storymedia_stories{state}`` and ``storymedia_queue_depth`` / ``storymedia_queue_oldest_seconds``
  ``{queue,lane}``: computed when scraped, from the catalog and each story's latest job, and from
  ``backend.queues()``; kept for ``STATES_TTL`` and ``QUEUES_TTL`` seconds so a flood of scrapes
  costs the store and the broker nothing more. ``storymedia_metrics_source_up{source}`` is 0 while
  a source cannot be read.
- ``storymedia_upload_*``: :func:`observe_upload`, called by the uploads when one finishes (uploads
  are received by this process in both modes).
- ``storymedia_webhook_deliveries_total{outcome}``: :func:`observe_delivery`, called by whoever
  makes a delivery attempt in this process. In the cluster the workers make them, so the count is
  cluster-wide in Redis (the workers' and every replica's replays) and read when scraped: every
  replica shows the same total (take ``max`` across replicas, not ``sum``).
- Renditions, render seconds, finished jobs and upload-to-manifest seconds: renders happen in other
  processes (the embedded pool, the Celery workers), so a **job observer** (a thread started with
  the app) reads the results the store keeps. Every ``every`` seconds it lists the service's job
  index (``jobs/<job>.json``) for the last ``window_days`` days (job ids start with their UTC date,
  so one listing per day), reads ``done.json`` of the jobs not yet seen finished, and for each newly
  finished one reads its asset results once. What it counted is written to a marker,
  ``metrics/observed/<job>.json`` in the private store (the finish time and a digest per asset
  result): a restarted service, or a second replica, does not count a job again, and a job
  finished again after a re-run counts only the assets whose results changed. Finished jobs are
  looked at again every ``recheck`` seconds (a re-run removes ``done.json``). Jobs submitted before
  the window are not watched: a re-run of one is not counted.

A rendition is ``rendered`` or ``reused`` as its asset's result says (when an asset has both, the
renditions whose keys the story's previous manifest version holds are the reused ones);
``failed`` counts, for a failed asset, one per preset it was to be rendered with.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from api import records
from api.routes.stories import job_state
from api.service import Service, service
from pipeline.errors import PipelineError
from pipeline.model.keys import manifest_version_key
from pipeline.model.story import SLUG
from pipeline.run import jobs
from pipeline.storage import NO_CACHE, Storage

log = logging.getLogger("storymedia.api.metrics")

SECONDS_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)
"""Renders and uploads: from half a second to an hour (prometheus_client's default stops at 10 s)."""
PUBLISH_BUCKETS = (5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200, 86400)
"""Upload finished to manifest published: a producer may submit hours after uploading."""

KINDS = ("image", "video", "audio")
OUTCOMES = ("rendered", "reused", "failed")
DELIVERY_OUTCOMES = ("delivered", "retry", "failed", "disabled")
DELIVERIES_HELP = "Webhook delivery attempts by outcome"
STORY_STATES = ("new", "queued", "running", "complete", "partial", "failed", "canceled")
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
OTHER = "other"

STATES_TTL = 15.0
QUEUES_TTL = 2.0
MARKERS = "metrics/observed/"


def _bounded(value: Any, allowed: Iterable[str]) -> str:
    return value if isinstance(value, str) and value in allowed else OTHER


@dataclass
class _Seen:
    story: str | None = None
    finished_at: str | None = None
    """The ``finished_at`` of ``done.json`` last counted (None: not finished when last looked at)."""
    checked: float = 0.0


class Metrics:
    """The service's registry, its metrics, and the job observer that feeds the per-job ones."""

    def __init__(self, svc: Service, every: float = 5.0, window_days: int = 2, recheck: float = 60.0) -> None:
        self.svc = svc
        self.every = every
        self.window_days = window_days
        self.recheck = recheck
        self.states_ttl = STATES_TTL
        self.queues_ttl = QUEUES_TTL
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.renditions = Counter("storymedia_renditions", "Renditions by preset and outcome"
                                  " (rendered, reused, failed)", ["preset", "outcome"], registry=reg)
        self.render_seconds = Histogram("storymedia_render_seconds", "Seconds one asset took to render"
                                        " and store, by asset kind", ["kind"], buckets=SECONDS_BUCKETS,
                                        registry=reg)
        self.jobs_finished = Counter("storymedia_jobs_finished", "Jobs finished, by final state", ["state"],
                                     registry=reg)
        self.publish_seconds = Histogram("storymedia_upload_to_manifest_seconds", "Seconds from the last"
                                         " upload of a job's files to its manifest", buckets=PUBLISH_BUCKETS,
                                         registry=reg)
        self.upload_seconds = Histogram("storymedia_upload_seconds", "Seconds one finished upload took",
                                        buckets=SECONDS_BUCKETS, registry=reg)
        self.upload_bytes = Counter("storymedia_upload_bytes", "Bytes of finished uploads", registry=reg)
        self.shared_deliveries = svc.backend.shared_delivery_counts
        self.deliveries = None if self.shared_deliveries else Counter(
            "storymedia_webhook_deliveries", DELIVERIES_HELP, ["outcome"], registry=reg)
        self.http_requests = Counter("storymedia_http_requests", "HTTP requests by method, route template"
                                     " and status class", ["method", "route", "status"], registry=reg)
        for preset in self._preset_names():
            for outcome in OUTCOMES:
                self.renditions.labels(preset, outcome)
        for kind in KINDS:
            self.render_seconds.labels(kind)
        for outcome in DELIVERY_OUTCOMES:
            if self.deliveries is not None:
                self.deliveries.labels(outcome)
        for state in jobs.FINAL_STATES:
            self.jobs_finished.labels(state)
        reg.register(_Scraped(self))
        self._seen: dict[str, _Seen] = {}
        self._tick_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _preset_names(self) -> list[str]:
        return sorted(self.svc.backend.presets)

    # what other parts call ------------------------------------------------------------------------

    def observe_upload(self, seconds: float, size: int) -> None:
        self.upload_seconds.observe(max(seconds, 0.0))
        self.upload_bytes.inc(max(size, 0))

    def observe_delivery(self, outcome: str) -> None:
        bounded = _bounded(outcome, DELIVERY_OUTCOMES)
        if self.deliveries is not None:
            self.deliveries.labels(bounded).inc()
            return
        try:
            self.svc.backend.count_deliveries({bounded: 1})
        except PipelineError as exc:
            log.warning("metrics: a webhook delivery could not be counted: %s", exc.reason)

    # the job observer -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._watch, name="storymedia-metrics", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # a bug: logged, and the next round tries again
                log.exception("the job observer failed")
            self._stop.wait(self.every)

    def tick(self, now: float | None = None) -> None:
        """One round: count every job of the window that finished since the last look."""
        with self._tick_lock:
            now = time.time() if now is None else now
            recent = set(self._recent_jobs(now))
            for job_id in sorted(recent):
                seen = self._seen.setdefault(job_id, _Seen())
                if seen.finished_at is not None and now - seen.checked < self.recheck:
                    continue
                try:
                    self._look_at(job_id, seen, now)
                except PipelineError as exc:
                    log.warning("job %s cannot be counted: %s", job_id, exc.reason)
                    seen.checked = now
            for job_id in set(self._seen) - recent:
                del self._seen[job_id]

    def _recent_jobs(self, now: float) -> Iterator[str]:
        private = self.svc.backend.private
        today = datetime.fromtimestamp(now, UTC)
        for back in range(self.window_days + 1):
            prefix = f"jobs/{today - timedelta(days=back):%Y%m%d}-"
            for key in private.list(prefix):
                name = key[len("jobs/"):]
                if name.endswith(".json") and jobs.JOB_ID.fullmatch(name[:-5]):
                    yield name[:-5]

    def _look_at(self, job_id: str, seen: _Seen, now: float) -> None:
        private = self.svc.backend.private
        seen.checked = now
        if seen.story is None:
            seen.story = _story_in_index(private, job_id)
        if not seen.story:
            return      # not a job of this service's index (damaged): never counted
        story_id = seen.story
        done = jobs.read_done(private, story_id, job_id)
        if not done:
            seen.finished_at = None
            return
        finished_at = str(done.get("finished_at", ""))
        if finished_at == seen.finished_at:
            return
        marker = self._marker(story_id, job_id)
        counted: dict[str, str] = dict(marker.get("assets", {})) if marker else {}
        if marker and marker.get("finished_at") == finished_at:
            seen.finished_at = finished_at     # counted already (before a restart, or by a replica)
            return
        job = jobs.read_job(private, story_id, job_id)
        results = jobs.read_asset_results(private, story_id, job_id)
        digests = {str(order): _digest(result) for order, result in results.items()}
        changed = [results[order] for order in sorted(results)
                   if counted.get(str(order)) != digests[str(order)]]
        previous_keys = self._previous_keys(story_id, done) if any(
            r.rendered and r.reused for r in changed) else set()
        for result in changed:
            self._count(job, result, previous_keys)
        self.jobs_finished.labels(_bounded(done.get("status"), jobs.FINAL_STATES)).inc()
        if marker is None:
            self._observe_publish(job, finished_at)
        private.replace(_marker_key(job_id), json.dumps(
            {"job": job_id, "finished_at": finished_at, "assets": digests}).encode("utf-8"),
            content_type="application/json", cache_control=NO_CACHE)
        seen.finished_at = finished_at

    def _marker(self, story_id: str, job_id: str) -> dict[str, Any] | None:
        private = self.svc.backend.private
        key = _marker_key(job_id)
        if not private.exists(key):
            return None
        try:
            data = json.loads(private.get_bytes(key))
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("job") != job_id:
            return None
        if not isinstance(data.get("assets"), dict):
            return None
        return data

    def _count(self, job: jobs.Job, result: jobs.AssetResult, previous_keys: set[str]) -> None:
        entry = result.entry
        status = entry.get("status")
        known = set(self._preset_names())
        if status == "failed":
            if 1 <= result.order <= len(job.story.assets):
                for name in job.story.asset_presets(job.story.assets[result.order - 1]):
                    self.renditions.labels(_bounded(name, known), "failed").inc()
            return
        if status != "done":
            return
        renditions = [r for r in entry.get("renditions", []) if isinstance(r, dict)]
        reused_left = result.reused if result.rendered else len(renditions)
        for rendition in renditions:
            preset = _bounded(str(rendition.get("preset", "")).split("@", 1)[0], known)
            was_reused = reused_left > 0 and (not result.rendered or rendition.get("key") in previous_keys)
            if was_reused:
                reused_left -= 1
            self.renditions.labels(preset, "reused" if was_reused else "rendered").inc()
        if result.rendered and result.seconds > 0:
            self.render_seconds.labels(_bounded(entry.get("kind"), KINDS)).observe(result.seconds)

    def _previous_keys(self, story_id: str, done: dict[str, Any]) -> set[str]:
        """Rendition keys of the story's manifest version before the one this job wrote."""
        version = done.get("manifest_version")
        if type(version) is not int or version < 2:
            return set()
        try:
            key = manifest_version_key(story_id, version - 1)
            document = json.loads(self.svc.backend.public.get_bytes(key))
        except (PipelineError, ValueError):
            return set()
        return {str(r.get("key")) for a in document.get("assets", []) if isinstance(a, dict)
                for r in a.get("renditions", []) if isinstance(r, dict)}

    def _observe_publish(self, job: jobs.Job, finished_at: str) -> None:
        """Seconds from the last upload of the job's files (as attached to the story) to its manifest."""
        finished = _when(finished_at)
        if finished is None:
            return
        shas = {a.sha256 for a in job.assets} | {a.subtitles_sha256 for a in job.assets if a.subtitles_sha256}
        latest = None
        private = self.svc.backend.private
        for key in private.list(f"stories/{job.story_id}/files/"):
            try:
                data = json.loads(private.get_bytes(key))
            except (PipelineError, ValueError):
                continue
            if not isinstance(data, dict) or data.get("sha256") not in shas:
                continue
            uploaded = _when(data.get("uploaded"))
            if uploaded is not None and uploaded <= finished and (latest is None or uploaded > latest):
                latest = uploaded
        if latest is not None:
            self.publish_seconds.observe((finished - latest).total_seconds())

    # what a scrape computes -----------------------------------------------------------------------

    def story_states(self) -> dict[str, int]:
        private = self.svc.backend.private
        counts = dict.fromkeys((*STORY_STATES, OTHER), 0)
        for entry in records.catalog(private):
            latest = entry.get("latest_job")
            # the same state the story list shows
            state = job_state(self.svc, entry["id"], latest if isinstance(latest, str) else None) or "new"
            counts[_bounded(state, STORY_STATES)] += 1
        return counts


def _story_in_index(private: Storage, job_id: str) -> str:
    """The story of ``jobs/<job>.json`` (the service's index), or "" when it names none."""
    try:
        entry = json.loads(private.get_bytes(f"jobs/{job_id}.json"))
    except (PipelineError, ValueError):
        return ""
    story = entry.get("story") if isinstance(entry, dict) else None
    return story if isinstance(story, str) and SLUG.fullmatch(story) else ""


def _marker_key(job_id: str) -> str:
    return f"{MARKERS}{job_id}.json"


def _digest(result: jobs.AssetResult) -> str:
    blob = json.dumps(vars(result), sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def _when(stamp: Any) -> datetime | None:
    if not isinstance(stamp, str):
        return None
    try:
        found = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def _delivery_family(counts: dict[str, int]) -> CounterMetricFamily:
    """The shared count of delivery attempts, every outcome listed (others summed as ``other``)."""
    bounded: dict[str, int] = dict.fromkeys(DELIVERY_OUTCOMES, 0)
    for outcome, number in counts.items():
        key = _bounded(outcome, DELIVERY_OUTCOMES)
        bounded[key] = bounded.get(key, 0) + max(number, 0)
    family = CounterMetricFamily("storymedia_webhook_deliveries", DELIVERIES_HELP, labels=["outcome"])
    for outcome, number in bounded.items():
        family.add_metric([outcome], number)
    return family


class _Scraped(Collector):
    """The gauges computed when scraped (stories by state, queues), each kept a few seconds."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.lock = threading.Lock()
        self.cache: dict[str, tuple[float, Any]] = {}

    def _cached(self, name: str, ttl: float, compute: Callable[[], Any]) -> Any:
        now = time.monotonic()
        found = self.cache.get(name)
        if found is not None and now - found[0] < ttl:
            return found[1]
        try:
            value = compute()
        except Exception as exc:   # an unreachable store or broker must not break the scrape
            reason = exc.reason if isinstance(exc, PipelineError) else type(exc).__name__
            log.warning("metrics: %s cannot be read: %s", name, reason)
            value = None
        self.cache[name] = (now, value)
        return value

    def describe(self) -> Iterable[Metric]:
        return []   # computed on scrape only: nothing to check at registration

    def collect(self) -> Iterable[Metric]:
        with self.lock:
            states = self._cached("stories", self.metrics.states_ttl, self.metrics.story_states)
            queues = self._cached("queues", self.metrics.queues_ttl, self.metrics.svc.backend.queues)
        up = GaugeMetricFamily("storymedia_metrics_source_up", "1 when the source of scraped figures"
                               " could be read", labels=["source"])
        up.add_metric(["stories"], 0 if states is None else 1)
        up.add_metric(["queues"], 0 if queues is None else 1)
        if self.metrics.shared_deliveries:
            with self.lock:
                counts = self._cached("deliveries", self.metrics.queues_ttl,
                                      self.metrics.svc.backend.delivery_counts)
            up.add_metric(["deliveries"], 0 if counts is None else 1)
            if counts is not None:
                yield _delivery_family(counts)
        yield up
        stories = GaugeMetricFamily("storymedia_stories", "Stories by the state of their latest job"
                                    " (new: never submitted)", labels=["state"])
        for state, count in (states or {}).items():
            stories.add_metric([state], count)
        yield stories
        depth = GaugeMetricFamily("storymedia_queue_depth", "Messages waiting, per queue",
                                  labels=["queue", "lane"])
        oldest = GaugeMetricFamily("storymedia_queue_oldest_seconds", "Seconds the oldest waiting"
                                   " message has waited, per queue (0: none waiting)",
                                   labels=["queue", "lane"])
        for row in queues or []:
            labels = [str(row.get("name", ""))[:64], str(row.get("lane", ""))[:16]]
            depth.add_metric(labels, float(row.get("depth", 0) or 0))
            oldest.add_metric(labels, float(row.get("oldest", 0) or 0))
        yield depth
        yield oldest


# the app's side ----------------------------------------------------------------------------------

router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response, responses={200: {
    "description": "The Prometheus text format", "content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}})
def metrics_page(svc: Annotated[Service, Depends(service)]) -> Response:
    """The service's metrics for Prometheus (no token needed: no label names a story, job or desk)."""
    found = metrics_of(svc)
    body = generate_latest(found.registry) if found is not None else b""
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class CountRequests:
    """ASGI middleware: ``storymedia_http_requests_total{method,route,status}`` with the route's
    template (``/v1/jobs/{job_id}``, never the path itself) and the status class (``2xx``)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None)
            self.metrics.http_requests.labels(_bounded(scope.get("method"), METHODS),
                                              route if isinstance(route, str) else "unmatched",
                                              f"{status[0] // 100}xx").inc()


def install(app: FastAPI, svc: Service) -> Metrics:
    """Give the service its metrics: the registry, ``GET /metrics``, the request counter."""
    disable_created_metrics()  # type: ignore[no-untyped-call]  # _created series: noise
    found = Metrics(svc)
    svc.extras["metrics"] = found
    app.include_router(router)
    app.add_middleware(CountRequests, metrics=found)
    return found


def metrics_of(svc: Service) -> Metrics | None:
    found = svc.extras.get("metrics")
    return found if isinstance(found, Metrics) else None


def start(svc: Service) -> None:
    """Start the job observer (from the app's lifespan)."""
    found = metrics_of(svc)
    if found is not None:
        found.start()


def stop(svc: Service) -> None:
    found = metrics_of(svc)
    if found is not None:
        found.stop()


def observe_upload(svc: Service, seconds: float, size: int) -> None:
    """One finished upload: how long it took and its bytes (nothing when metrics are not installed)."""
    found = metrics_of(svc)
    if found is not None:
        found.observe_upload(seconds, size)


def observe_delivery(svc: Service, outcome: str) -> None:
    """One webhook delivery attempt: ``delivered``, ``retry`` (failed, tried again later),
    ``failed`` (the last attempt failed) or ``disabled`` (410: the endpoint is disabled)."""
    found = metrics_of(svc)
    if found is not None:
        found.observe_delivery(outcome)
