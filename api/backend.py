"""What the service needs from an executor: the embedded one (``api.embedded``) or the cluster
(``api.cluster``). Same job records and manifests in both; the routes never ask which it is.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.ingest.limits import Limits
from pipeline.model.presets import Preset
from pipeline.run import jobs
from pipeline.storage import Storage


@dataclass
class LiveJob:
    """A job's live progress (never the only copy of anything: the store has the results)."""

    job: str
    story: str
    state: str
    reason: str = ""
    updated: float = 0.0
    assets: dict[int, dict[str, Any]] = field(default_factory=dict)
    """order -> state, done, total, attempts, worker, reason, started (epoch seconds)."""


@dataclass(frozen=True)
class Submitted:
    job: str
    attached: bool
    """True when the same story with the same files was already running: this is that job."""


class Backend(abc.ABC):
    """An executor of jobs, seen from the service."""

    mode: str
    public: Storage
    """Renditions and manifests."""
    private: Storage
    """Raws, story and job records, uploads, webhook outbox."""
    presets: dict[str, Preset]
    limits: Limits
    media_base_url: str | None = None
    """Where the renditions' URLs point when not at the service itself (the cluster's S3 endpoint
    or public base URL): the pages may load images and video from there."""

    def start(self) -> None:  # noqa: B027  (optional hook)
        """Called once the service starts (resume what a restart interrupted)."""

    def stop(self) -> None:  # noqa: B027  (optional hook)
        """Called when the service stops."""

    shared_delivery_counts: bool = False
    """True when webhook deliveries are made by other processes (the cluster's workers) and
    counted where every replica reads them (``delivery_counts``)."""

    def count_deliveries(self, counts: Mapping[str, int]) -> None:  # noqa: B027  (optional hook)
        """Add delivery attempts made by this process to the shared count (cluster only)."""

    def delivery_counts(self) -> dict[str, int]:
        """The shared count of webhook delivery attempts by outcome (cluster only)."""
        return {}

    @contextlib.contextmanager
    def hold(self, name: str) -> Iterator[bool]:
        """Hold ``name`` for the ``with`` block against every replica of the service sharing this
        executor; yields False (and holds nothing) while another one holds it. One service process
        (embedded) has no other replica: its own locks are enough."""
        yield True

    @abc.abstractmethod
    def submit(self, staged: jobs.Staged, breaking: bool) -> Submitted:
        """Record the job (its raws are stored) and start it, or attach to the same one running."""

    @abc.abstractmethod
    def live(self, job_id: str) -> LiveJob | None:
        """The job's live progress, or None when none is known (finished long ago, or lost)."""

    @abc.abstractmethod
    def resume(self, job: jobs.Job) -> None:
        """Run what is left of a recorded job (after a re-run or cancel was recorded)."""

    @abc.abstractmethod
    def stop_job(self, job: jobs.Job) -> None:
        """Stop the job's running work now (its cancel marker is already written)."""

    @abc.abstractmethod
    def queues(self) -> list[dict[str, Any]]:
        """Per queue: name, lane, depth, oldest (seconds the oldest waiting message has waited)."""

    @abc.abstractmethod
    def workers(self) -> list[dict[str, Any]]:
        """Per worker: name, alive, running (what it runs: job, story, asset order)."""

    @abc.abstractmethod
    def ready(self) -> dict[str, str]:
        """Each dependency -> ``ok`` or why it is not."""

    @abc.abstractmethod
    def presign(self, key: str, expires: int) -> str:
        """A URL that serves one public object for ``expires`` seconds."""
