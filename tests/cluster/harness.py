"""A real cluster for tests: a Redis server, the S3 server, and `storymedia worker` processes.

Workers are the real command (``storymedia worker``, which execs Celery's prefork worker), so
signals, pool children and ffmpeg grandchildren are the ones production has.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from tests.servers import STORYMEDIA, RedisServer, WorkerProcess


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Worker(WorkerProcess):
    def pool(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            return psutil.Process(self.process.pid).children()
        return []

    def rendering_child(self) -> psutil.Process | None:
        """The pool process that is running ffmpeg right now."""
        for child in self.pool():
            with contextlib.suppress(psutil.Error):
                if any(g.name() == "ffmpeg" for g in child.children(recursive=True)):
                    return child
        return None


class Cluster:
    """One test's cluster: its own Redis, a prefix of the shared S3 bucket, its own workers."""

    def __init__(self, root: Path, redis: RedisServer, s3_env: dict[str, str], prefix: str,
                 settings: dict[str, str] | None = None) -> None:
        self.root = root
        self.redis = redis
        self.storage_url = f"{s3_env['STORYMEDIA_STORAGE_URL'].rstrip('/')}/{prefix}"
        self.env = {
            **os.environ, **s3_env,
            "STORYMEDIA_BROKER_URL": redis.url,
            "STORYMEDIA_STORAGE_URL": self.storage_url,
            "STORYMEDIA_SCRATCH": str(root / "scratch"),
            "STORYMEDIA_S3_MULTIPART_MB": "5",
            "STORYMEDIA_TIME_LIMIT": "600",
            "STORYMEDIA_SOFT_TIME_LIMIT": "540",
            "STORYMEDIA_VISIBILITY_TIMEOUT": "660",
            "STORYMEDIA_RESTORE_INTERVAL": "2",
            "STORYMEDIA_SOFT_SHUTDOWN_TIMEOUT": "1",
            "NO_COLOR": "1", "COLUMNS": "200",
            **(settings or {}),
        }
        self.workers: list[Worker] = []

    def worker(self, queues: str = "probe,image,video,io,manifest", concurrency: int = 2,
               name: str = "w", **settings: str) -> Worker:
        label = f"{name}{len(self.workers)}"
        worker = Worker({**self.env, **settings, "STORYMEDIA_SCRATCH": str(self.root / f"scratch-{name}")},
                        queues, concurrency, label, self.root / f"worker-{label}-{int(time.time() * 1000)}.log")
        self.workers.append(worker)
        return worker

    def cli(self, *args: str, timeout: float = 300, **settings: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([STORYMEDIA, *args], env={**self.env, **settings}, capture_output=True,
                              text=True, timeout=timeout, check=False)

    def storage(self, private: bool = False) -> Any:
        """The cluster's public area (renditions, manifests), or with ``private`` its private one
        (raws, job records)."""
        from pipeline.storage import open_storage
        from workers.settings import private_storage_default

        url = private_storage_default(self.storage_url) if private else self.storage_url
        return open_storage(url, endpoint_url=self.env["STORYMEDIA_S3_ENDPOINT_URL"])

    def status(self, job: str) -> dict[str, Any]:
        done = self.cli("status", job, "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        loaded: dict[str, Any] = json.loads(done.stdout)
        return loaded

    def logs(self) -> str:
        return "\n".join(f"--- {w.name}\n{w.text()[-4000:]}" for w in self.workers)

    def close(self) -> None:
        """The test is over and its Redis goes with it: no need for a graceful shutdown."""
        for worker in self.workers:
            worker.kill_all()
            worker.stop()
