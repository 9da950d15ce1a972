"""Live progress in Redis: what operators and ``submit --wait`` watch. Never the only copy of anything.

    storymedia:job:<job>        hash: story, state, reason, updated, asset:<order> -> JSON (file,
                                state, done, total, attempts, worker, reason, started: when it
                                entered ``rendering``, epoch seconds): the JobEvents so far
    storymedia:attempts:<job>:<order>:<stage>   executions of one stage of one asset (poison files)
    storymedia:claim:<story>:<fingerprint>      the job already running this exact submission
    storymedia:lock:manifest:<story>            one manifest writer per story at a time
    storymedia:uploads:<job>:<order>            set of "key upload-id": multipart uploads an attempt
                                                started and could not abort (the store was down)

Everything expires after a week. Losing all of it loses no work: ``reconcile`` finds unfinished
jobs in the object store. Progress writes are best effort: a Redis hiccup never fails a render.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from pipeline.run.orchestration import JobEvent

KEEP = 7 * 86400


@dataclass
class JobView:
    job: str
    story: str
    state: str
    reason: str
    updated: float
    assets: dict[int, dict[str, Any]] = field(default_factory=dict)


class Live:
    def __init__(self, url: str) -> None:
        self.redis = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5,
                                          health_check_interval=25, decode_responses=True)

    @staticmethod
    def _job(job: str) -> str:
        return f"storymedia:job:{job}"

    def publish(self, event: JobEvent, files: Iterable[tuple[int, str]] = ()) -> None:
        """Show one step of a job (``files``: (order, name) of assets to list as pending) or of
        one of its assets. Best effort; an asset of a job Redis lost is left for reconcile."""
        if event.about_job:
            self._job_state(event, files)
            return
        key = self._job(event.job_id)
        with contextlib.suppress(redis.RedisError):
            if not self.redis.exists(key):
                return   # Redis lost the job (restarted empty): leave it for reconcile to see
            current = self.redis.hget(key, f"asset:{event.order}")
            value = json.loads(current) if current else {}
            if event.state == "rendering" and value.get("state") != "rendering":
                value["started"] = time.time()   # the service's ETA counts from here
            value.update(state=event.state, done=event.done, total=event.total)
            value.update({name: getattr(event, name) for name in ("reason", "attempts", "worker")
                          if getattr(event, name)})
            self.redis.hset(key, mapping={f"asset:{event.order}": json.dumps(value), "updated": time.time()})

    def _job_state(self, event: JobEvent, files: Iterable[tuple[int, str]]) -> None:
        fields: Any = {"story": event.story_id, "state": event.state, "reason": event.reason,
                       "updated": time.time()}
        for order, name in files:
            fields[f"asset:{order}"] = json.dumps({"file": name, "state": "pending", "done": 0, "total": 0})
        key = self._job(event.job_id)
        with contextlib.suppress(redis.RedisError):
            pipe = self.redis.pipeline()
            pipe.hset(key, mapping=fields)
            pipe.expire(key, KEEP)
            pipe.set(f"storymedia:story:{event.story_id}", event.job_id, ex=KEEP)
            pipe.execute()

    def read(self, job: str) -> JobView | None:
        data = cast(dict[str, str], self.redis.hgetall(self._job(job)))
        if not data:
            return None
        view = JobView(job=job, story=data.get("story", ""), state=data.get("state", ""),
                       reason=data.get("reason", ""), updated=float(data.get("updated", 0)))
        for name, value in data.items():
            if name.startswith("asset:"):
                view.assets[int(name[6:])] = json.loads(value)
        return view

    def latest_job(self, story: str) -> str | None:
        value = self.redis.get(f"storymedia:story:{story}")
        return str(value) if value else None

    def attempt(self, job: str, order: int, stage: str) -> int:
        """Count one more execution; returns the count (1 when Redis cannot tell)."""
        key = f"storymedia:attempts:{job}:{order}:{stage}"
        try:
            pipe = self.redis.pipeline()
            pipe.incr(key)
            pipe.expire(key, KEEP)
            count, _ = pipe.execute()
            return int(count)
        except redis.RedisError:
            return 1

    def claim(self, story: str, fingerprint: str, job: str, ttl: int) -> str:
        """Claim this exact submission for ``job``; returns the job that holds it (maybe another)."""
        key = f"storymedia:claim:{story}:{fingerprint}"
        if self.redis.set(key, job, nx=True, ex=ttl):
            return job
        holder = self.redis.get(key)
        return str(holder) if holder else job

    def hold(self, story: str, fingerprint: str, job: str, ttl: int) -> None:
        with contextlib.suppress(redis.RedisError):
            self.redis.set(f"storymedia:claim:{story}:{fingerprint}", job, ex=ttl)

    def release(self, story: str, fingerprint: str, job: str) -> None:
        key = f"storymedia:claim:{story}:{fingerprint}"
        with contextlib.suppress(redis.RedisError):
            if self.redis.get(key) == job:
                self.redis.delete(key)

    @contextlib.contextmanager
    def manifest_lock(self, story: str, timeout: float) -> Iterator[None]:
        lock = self.redis.lock(f"storymedia:lock:manifest:{story}", timeout=timeout,
                               blocking_timeout=timeout)
        if not lock.acquire():
            raise redis.RedisError(f"another manifest of {story} is being written")
        try:
            yield
        finally:
            with contextlib.suppress(redis.RedisError):
                lock.release()

    def _uploads(self, job: str, order: int) -> str:
        return f"storymedia:uploads:{job}:{order}"

    def remember_uploads(self, job: str, order: int, uploads: list[tuple[str, str]]) -> None:
        """Keep the ids of uploads an attempt left unfinished, for the asset's next attempt."""
        with contextlib.suppress(redis.RedisError):
            pipe = self.redis.pipeline()
            pipe.sadd(self._uploads(job, order), *(f"{key} {upload}" for key, upload in uploads))
            pipe.expire(self._uploads(job, order), KEEP)
            pipe.execute()

    def remembered_uploads(self, job: str, order: int) -> list[tuple[str, str]]:
        try:
            members = cast(set[str], self.redis.smembers(self._uploads(job, order)))
        except redis.RedisError:
            return []
        return [(key, upload) for key, _, upload in (m.partition(" ") for m in sorted(members)) if upload]

    def forget_upload(self, job: str, order: int, key: str, upload: str) -> None:
        with contextlib.suppress(redis.RedisError):
            self.redis.srem(self._uploads(job, order), f"{key} {upload}")
