"""The cluster behind the service: jobs go to the Celery workers, the stores are the cluster's own
areas (S3), live progress, queues and workers are read from Redis.

The settings are the workers' (``workers.settings.Settings`` from the service's environment, the
``storymedia serve`` flags over it), so the service and the workers agree on the broker, the
buckets and the presets. Every broker failure leaves as ``pipeline.errors.BrokerError`` (the
service answers 503 ``unavailable``), never a Redis or kombu error; what operators call (queues,
workers, readiness) is bounded in time.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace
from typing import Any

import redis

from api.backend import Backend, LiveJob, Submitted
from api.config import ServiceConfig
from pipeline.errors import PipelineError, StorageError
from pipeline.redaction import redact
from pipeline.run import jobs
from pipeline.storage import BucketSetup, Presigning, Storage
from workers import client, notify
from workers.broker import BROKER_FAILURES, broker_error, broker_errors
from workers.context import open_context
from workers.queues import waiting
from workers.reconcile import enqueue
from workers.settings import Settings

log = logging.getLogger("storymedia.api.cluster")

INSPECT_SECONDS = 1.0
"""How long workers get to say what they run (every call of ``workers()`` waits this long)."""
READY_SECONDS = 3.0
"""How long ``ready()`` waits for the broker and the stores before it says they did not answer."""
HOLD_SECONDS = 60.0
"""A replica's hold lapses this long after it stopped renewing it (a replica that died)."""
OPERATIONS_SOCKET_SECONDS = 2.0
"""Socket timeouts of the Redis client that reads the queues and answers readiness."""
FORGET_WORKER = 3600.0
"""Seconds a worker that stopped answering is still listed (as not alive)."""
RUNNING_SHOWN = 50
"""Tasks listed per worker at most."""
LIVE_UNREADABLE: tuple[type[BaseException], ...] = (*BROKER_FAILURES, ValueError)
"""Redis is away, or a live entry is damaged."""
HOLD_FAILURES: tuple[type[BaseException], ...] = (*BROKER_FAILURES, redis.exceptions.LockError)
"""Renewing or giving back a hold: Redis away, or the hold lapsed meanwhile."""
READY_PROBE = ".storymedia-ready"
"""The key a store is asked about (it need not exist: the question is whether the store answers)."""


def cluster_settings(config: ServiceConfig) -> Settings:
    """The workers' settings from the service's environment; the service's flags (presets folder,
    public URL) win over their variables."""
    settings = Settings.from_env(config.env, broker_url=config.broker_url)
    if config.presets_dir is not None:
        settings = replace(settings, presets_dir=config.presets_dir)
    if config.public_url:
        settings = replace(settings, public_url=config.public_url)
    settings.check_broker()
    return settings


class ClusterBackend(Backend):
    mode = "cluster"

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.settings = cluster_settings(config)
        self.media_base_url = (self.settings.public_url or self.settings.s3_public_endpoint_url
                               or self.settings.s3_endpoint_url)
        self.ctx = open_context(self.settings)
        self.public, self.private = self.ctx.storage, self.ctx.private
        self.presets, self.limits = self.ctx.presets, self.ctx.limits
        self._redis = redis.Redis.from_url(self.settings.broker_url, socket_timeout=OPERATIONS_SOCKET_SECONDS,
                                           socket_connect_timeout=OPERATIONS_SOCKET_SECONDS)
        self._lock = threading.Lock()
        self._inspecting = threading.Lock()
        self._seen: dict[str, float] = {}
        self._ensured: set[str] = set()
        self._checks = ThreadPoolExecutor(max_workers=3, thread_name_prefix="storymedia-ready")
        self._in_flight: dict[str, Future[str]] = {}

    # executor ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Set up the buckets (best effort: while a store is unreachable, ``/readyz`` says so and
        tries again). Unfinished jobs are the cluster's ``reconcile``'s (beat runs it)."""
        for area in (self.public, self.private):
            try:
                self._ensure_bucket(area)
            except PipelineError as exc:
                log.warning("the store %s is not ready: %s", area.url, redact(exc.reason))

    def stop(self) -> None:
        self._checks.shutdown(wait=False, cancel_futures=True)
        self._redis.close()

    shared_delivery_counts = True

    def count_deliveries(self, counts: Mapping[str, int]) -> None:
        with broker_errors(self.settings.broker_url):
            notify.count_outcomes(self._redis, counts)

    def delivery_counts(self) -> dict[str, int]:
        with broker_errors(self.settings.broker_url):
            return notify.delivery_counts(self._redis)

    @contextlib.contextmanager
    def hold(self, name: str, ttl: float = HOLD_SECONDS) -> Iterator[bool]:
        """A lock in Redis (``storymedia:hold:<name>``) shared by every replica, renewed every
        third of ``ttl`` while the block runs, so a long request keeps it and a dead replica's
        lapses (its token is the process's, not the acquiring thread's: the renewing thread must
        see it). BrokerError (503) while Redis is away."""
        lock = self._redis.lock(f"storymedia:hold:{name}", timeout=ttl, blocking=False, thread_local=False)
        with broker_errors(self.settings.broker_url):
            held = lock.acquire()
        if not held:
            yield False
            return
        done = threading.Event()

        def renew() -> None:
            while not done.wait(ttl / 3):
                try:
                    lock.reacquire()
                except HOLD_FAILURES as exc:
                    log.warning("the hold on %s could not be renewed: %s", name, type(exc).__name__)

        renewer = threading.Thread(target=renew, name="storymedia-hold", daemon=True)
        renewer.start()
        try:
            yield True
        finally:
            done.set()
            renewer.join(timeout=OPERATIONS_SOCKET_SECONDS * 2)
            with contextlib.suppress(*HOLD_FAILURES):
                lock.release()

    def submit(self, staged: jobs.Staged, breaking: bool) -> Submitted:
        sent = client.submit_staged(self.ctx, staged, breaking)
        return Submitted(job=sent.job, attached=sent.attached)

    def live(self, job_id: str) -> LiveJob | None:
        try:
            view = self.ctx.live.read(job_id)
        except LIVE_UNREADABLE:   # the store still answers
            return None
        if view is None:
            return None
        return LiveJob(job=view.job, story=view.story, state=view.state, reason=view.reason,
                       updated=view.updated, assets=view.assets)

    def resume(self, job: jobs.Job) -> None:
        """Queue the job's first stage again: every stage skips what is recorded, so only what is
        left (a re-run asset, the manifest of a canceled job) runs."""
        with broker_errors(self.settings.broker_url):
            enqueue(job, self.ctx)

    def stop_job(self, job: jobs.Job) -> None:
        """Nothing to send: the cancel marker is in the store, where every stage looks. A stage
        that has not started sees it and does not start; the render task watches it while ffmpeg
        runs, stops ffmpeg, aborts its own uploads and records the asset canceled."""

    # operations ----------------------------------------------------------------------------------

    def queues(self) -> list[dict[str, Any]]:
        with broker_errors(self.settings.broker_url):
            found = waiting(self._redis)
        rows = []
        for queue in found:
            row: dict[str, Any] = {"name": queue.name, "lane": queue.lane, "depth": queue.depth,
                                   "oldest": queue.oldest}
            if queue.note:
                row["note"] = queue.note
                log.info("queue %s: %s", queue.name, queue.note)
            rows.append(row)
        return rows

    def workers(self) -> list[dict[str, Any]]:
        """The workers that answer within ``INSPECT_SECONDS`` and what each runs (from the tasks'
        arguments), and those that answered before but no longer do (not alive). Asking every
        worker what it runs is itself the sign of life: a separate ping would only wait longer."""
        with self._inspecting, broker_errors(self.settings.broker_url):
            replies = self.ctx.app.control.inspect(timeout=INSPECT_SECONDS).active() or {}
        now = time.time()
        with self._lock:
            for name in replies:
                self._seen[name] = now
            for name in [name for name, seen in self._seen.items() if now - seen > FORGET_WORKER]:
                del self._seen[name]
            known = sorted(self._seen)
        rows = []
        for name in known:
            tasks = replies.get(name)
            running = [_running(task) for task in tasks[:RUNNING_SHOWN]] if isinstance(tasks, list) else []
            rows.append({"name": name, "alive": name in replies, "running": running})
        return rows

    def ready(self) -> dict[str, str]:
        """The broker (PING) and both stores (a HEAD; the bucket set up first if it was not yet):
        ``ok`` or why not, each within ``READY_SECONDS``. A check still running from an earlier
        call is waited for again rather than started twice."""
        checks: dict[str, Callable[[], str]] = {
            "broker": self._broker_answers,
            "store-public": lambda: self._store_answers(self.public),
            "store-private": lambda: self._store_answers(self.private),
        }
        with self._lock:
            futures = {}
            for name, check in checks.items():
                future = self._in_flight.get(name)
                if future is None or future.done():
                    future = self._in_flight[name] = self._checks.submit(check)
                futures[name] = future
        wait(futures.values(), timeout=READY_SECONDS)
        return {name: future.result() if future.done() else f"no answer within {READY_SECONDS:.0f} s"
                for name, future in futures.items()}

    def _broker_answers(self) -> str:
        try:
            self._redis.ping()
        except BROKER_FAILURES as exc:
            return broker_error(exc, self.settings.broker_url).reason
        except Exception as exc:  # a bug must not turn readiness into a 500
            log.exception("checking the broker failed")
            return f"the check failed ({type(exc).__name__})"
        return "ok"

    def _store_answers(self, area: Storage) -> str:
        try:
            self._ensure_bucket(area)
            area.head(READY_PROBE)
        except PipelineError as exc:
            return redact(exc.reason)
        except Exception as exc:  # a bug must not turn readiness into a 500
            log.exception("checking the store %s failed", area.url)
            return f"the check failed ({type(exc).__name__})"
        return "ok"

    def _ensure_bucket(self, area: Storage) -> None:
        if isinstance(area, BucketSetup) and area.url not in self._ensured:
            area.ensure_bucket()
            self._ensured.add(area.url)

    def presign(self, key: str, expires: int) -> str:
        if not isinstance(self.public, Presigning):
            raise StorageError(f"presigned URLs need S3 storage ({self.public.url} is not)")
        return self.public.presign(key, expires)


def _running(task: Any) -> dict[str, Any]:
    """One task a worker runs, as operators read it: its name and the job, story and asset order
    from its keyword arguments (nothing else of the message)."""
    if not isinstance(task, dict):
        return {"task": ""}
    arguments = task.get("kwargs")
    arguments = arguments if isinstance(arguments, dict) else {}
    row: dict[str, Any] = {"task": str(task.get("name", ""))[:100]}
    for name, field in (("story", "story_id"), ("job", "job_id")):
        value = arguments.get(field)
        if isinstance(value, str):
            row[name] = value[:200]
    order = arguments.get("order")
    if type(order) is int:
        row["order"] = order
    return row
