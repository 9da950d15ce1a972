"""The embedded executor behind the service: jobs run here, in this process's pool, into
``DATA/public`` and ``DATA/private``. Nothing else to start.

Jobs wait in one queue and run one at a time per story (the story's lock, as ``storymedia run``
takes it), up to ``JOBS_AT_ONCE`` stories at once, each asset in a process of its own
(:func:`pipeline.run.embedded.run_job`). Live progress is kept in memory; the durable truth is the
job records in ``DATA/private``, so a restarted service resumes every job without ``done.json``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import socket
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from api.backend import Backend, LiveJob, Submitted
from api.config import ServiceConfig
from pipeline.errors import PipelineError
from pipeline.ingest.limits import load_limits
from pipeline.logs import log_context
from pipeline.model.presets import load_presets
from pipeline.run import jobs, orchestration
from pipeline.run.embedded import areas, run_job
from pipeline.run.orchestration import JobEvent, job_event
from pipeline.storage import LocalStorage

log = logging.getLogger("storymedia.api.embedded")

JOBS_AT_ONCE = 2
KEEP_FINISHED = 3600.0
"""Seconds a finished job's live progress stays in memory (the store keeps its results)."""


def sign(secret: bytes, key: str, expires: int) -> str:
    return hmac.new(secret, f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()


class EmbeddedBackend(Backend):
    mode = "embedded"
    public: LocalStorage
    private: LocalStorage

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.public, self.private = areas(config.data, config.public_url)
        self.presets = load_presets(config.presets_dir)
        self.limits = load_limits(config.presets_dir)
        self._lock = threading.Lock()
        self._live: dict[str, LiveJob] = {}
        self._queued: deque[tuple[str, float]] = deque()
        self._running: dict[str, jobs.Job] = {}
        self._fingerprints: dict[str, str] = {}
        self._pool = ThreadPoolExecutor(max_workers=JOBS_AT_ONCE, thread_name_prefix="storymedia-job")
        self.host = socket.gethostname()

    # executor ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Resume every job a stopped service left unfinished."""
        for story_id, job_id in jobs.unfinished_jobs(self.private):
            try:
                job = jobs.read_job(self.private, story_id, job_id)
            except PipelineError as exc:
                log.warning("job %s of %s cannot be resumed: %s", job_id, story_id, exc.reason)
                continue
            log.info("resuming job %s of %s", job_id, story_id)
            self.resume(job)

    def stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def submit(self, staged: jobs.Staged, breaking: bool) -> Submitted:
        with self._lock:
            holder = self._fingerprints.get(staged.fingerprint)
            if holder is not None:
                return Submitted(job=holder, attached=True)
            job = jobs.record(self.private, staged, jobs.new_job_id(), breaking)
            self._fingerprints[staged.fingerprint] = job.id
        self.resume(job)
        return Submitted(job=job.id, attached=False)

    def resume(self, job: jobs.Job) -> None:
        with self._lock:
            self._fingerprints.setdefault(job.fingerprint, job.id)
            self._queued.append((job.id, time.time()))
        self._emit(job_event(job.id, job.story_id, "queued"), job)
        self._pool.submit(self._run, job)

    def _run(self, job: jobs.Job) -> None:
        with log_context(story=job.story_id, job=job.id):
            self._run_logged(job)

    def _run_logged(self, job: jobs.Job) -> None:
        with self._lock:
            self._queued = deque(item for item in self._queued if item[0] != job.id)
            self._running[job.id] = job
        try:
            with self.private.exclusive(f"story-{job.story_id}", timeout=6 * 3600):
                finished, _ = run_job(job, self.public, self.private, self.presets, self.limits,
                                      self.config.workers, lambda event: self._emit(event, job))
            self._emit(job_event(job.id, job.story_id, finished.status, finished.reason), job)
        except PipelineError as exc:
            log.warning("job %s of %s stopped: %s", job.id, job.story_id, exc.reason)
            self._emit(job_event(job.id, job.story_id, orchestration.STALLED,
                                 f"{exc.reason}; the service resumes it when it restarts"), job)
        except Exception as exc:  # a bug: the job stays unfinished and is resumed on restart
            log.exception("job %s of %s failed: %s", job.id, job.story_id, type(exc).__name__)
            self._emit(job_event(job.id, job.story_id, orchestration.STALLED,
                                 "internal error; the service resumes it when it restarts"), job)
        finally:
            with self._lock:
                self._running.pop(job.id, None)
                if self._fingerprints.get(job.fingerprint) == job.id:
                    del self._fingerprints[job.fingerprint]

    def _emit(self, event: JobEvent, job: jobs.Job) -> None:
        now = time.time()
        with self._lock:
            live = self._live.get(event.job_id)
            if live is None:
                live = self._live[event.job_id] = LiveJob(job=event.job_id, story=event.story_id,
                                                          state="queued")
                for asset in job.assets:
                    live.assets[asset.order] = {"state": "pending", "done": 0, "total": 0}
            live.updated = now
            if event.about_job:
                live.state, live.reason = event.state, event.reason
            else:
                row = dict(live.assets.get(event.order, {}))
                if event.state == "rendering" and row.get("state") != "rendering":
                    row["started"] = now
                row.update(state=event.state, done=event.done, total=event.total, updated=now)
                row.update({name: getattr(event, name) for name in ("reason", "attempts", "worker")
                            if getattr(event, name)})
                live.assets[event.order] = row
            self._forget_old(now)

    def _forget_old(self, now: float) -> None:
        old = [job for job, live in self._live.items()
               if live.state in jobs.FINAL_STATES and now - live.updated > KEEP_FINISHED]
        for job in old:
            del self._live[job]

    def live(self, job_id: str) -> LiveJob | None:
        with self._lock:
            found = self._live.get(job_id)
            return replace(found, assets={k: dict(v) for k, v in found.assets.items()}) if found else None

    def stop_job(self, job: jobs.Job) -> None:
        """Nothing more starts (the cancel marker); the run stops its running ffmpeg itself."""

    # operations ----------------------------------------------------------------------------------

    def queues(self) -> list[dict[str, Any]]:
        now = time.time()
        with self._lock:
            waiting = list(self._queued)
        oldest = now - min((t for _, t in waiting), default=now)
        return [{"name": "embedded", "lane": "normal", "depth": len(waiting), "oldest": round(oldest, 3)}]

    def workers(self) -> list[dict[str, Any]]:
        with self._lock:
            running = [{"job": job.id, "story": job.story_id} for job in self._running.values()]
        return [{"name": f"embedded@{self.host}", "alive": True, "running": running}]

    def ready(self) -> dict[str, str]:
        found = {}
        for name, area in (("public", self.public), ("private", self.private)):
            root = area.root
            try:
                root.mkdir(parents=True, exist_ok=True)
                probe = root / ".ready"
                probe.write_bytes(b"")
                probe.unlink()
                found[f"store-{name}"] = "ok"
            except OSError as exc:
                found[f"store-{name}"] = f"the folder cannot be written ({exc.strerror})"
        return found

    def presign(self, key: str, expires: int) -> str:
        until = int(time.time()) + expires
        return f"/v1/files/{quote(key)}?expires={until}&signature={sign(self.config.secret, key, until)}"
