"""The embedded executor: one story, in-process, on every core, into a local folder.

What the job is and what happens next is :mod:`pipeline.run.orchestration`'s, as in the cluster;
this module only runs the units of work: each asset in a process pool (one asset per task; a
process renders all of an asset's renditions from one decode), at most one per process at a time,
so an asset not yet started is never started once the job is canceled. A running asset watches
the job's cancel marker (:mod:`pipeline.run.stopping`, every half second) and stops where it is:
ffmpeg and the photo render are killed, nothing half-stored is left; a process that does not stop
within ``STOP_GRACE`` seconds is killed with its children. Progress events travel back on a
queue. The job's records live in ``OUT/private`` like the cluster's in its private bucket: the
job record, each asset's result as it finishes, ``done.json`` after the manifest.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError, StorageError
from pipeline.ingest.limits import Limits, load_limits
from pipeline.model import manifest
from pipeline.model.keys import manifest_key, raw_key
from pipeline.model.presets import Preset, load_presets
from pipeline.model.story import Story, load_story
from pipeline.render.graphics.text import require_raqm
from pipeline.run import jobs, orchestration, stopping
from pipeline.run.asset import AssetOutcome, AssetWork, failed_entry, process_asset
from pipeline.run.orchestration import Finished, JobEvent, asset_event, job_event
from pipeline.storage import LocalStorage, Storage

OnEvent = Callable[[JobEvent], None]
MAX_ROUNDS = 3
"""Rounds of re-rendering assets whose stored objects do not check out before the run gives up."""
HOST = socket.gethostname()
CANCEL_POLL = 0.5
"""Seconds between looks at the job's cancel marker (the pool's loop, and each running asset)."""
STOP_GRACE = 10.0
"""Seconds the running assets of a canceled job get to stop by themselves before their processes
are killed (ffmpeg and the photo render server die with them)."""

_events: Any = None


def _init_worker(events: Any) -> None:
    global _events
    _events = events
    stopping.install()


def _run_one(work: AssetWork, storage: Storage, private: Storage, limits: Limits, job_id: str,
             story_id: str) -> AssetOutcome | None:
    """Run one asset in a pool process; None when its job was canceled while it ran (its work
    stopped where it was, nothing of it recorded)."""
    def progress(stage: str, done: int, total: int) -> None:
        if _events is not None:
            _events.put(asset_event(job_id, story_id, work.order, stage, done, total))

    def canceled() -> bool:
        return orchestration.is_canceled(private, story_id, job_id)

    try:
        with stopping.watch(canceled, CANCEL_POLL):
            return process_asset(work, storage, limits, progress=progress)
    except stopping.AssetCanceled:
        return None


def _crashed(work: AssetWork) -> AssetOutcome:
    return AssetOutcome(entry=failed_entry(
        work, "worker-crashed", "processing stopped unexpectedly (the worker process died,"
        " perhaps out of memory); run the story again to retry", retryable=True))


def _outcome(future: Future[AssetOutcome | None], work: AssetWork, canceled: bool) -> AssetOutcome | None:
    """The asset's outcome (None: canceled); a worker that died (killed, out of memory) fails only
    its asset, unless the job was canceled (then it was killed for that)."""
    try:
        return future.result()
    except BrokenProcessPool:
        return None if canceled else _crashed(work)
    except PipelineError:
        raise  # storage trouble: the whole run stops and says so
    except Exception as exc:  # a bug or a library failure on strange input: fail this asset only
        return AssetOutcome(entry=failed_entry(
            work, "internal", f"internal error while processing this file ({type(exc).__name__}:"
            f" {exc}); please report it"))


@dataclass
class RunReport:
    story: Story
    job: jobs.Job
    manifest_path: Path
    finished: Finished
    outcomes: list[AssetOutcome] = field(default_factory=list)
    """Of the assets that ran, in story order."""

    @property
    def written(self) -> manifest.Written:
        """The manifest this run wrote, or the story's current one when it wrote none (the job was
        canceled, or the manifest was unchanged)."""
        if self.finished.written is not None:
            return self.finished.written
        key = manifest_key(self.story.story.id)
        if not self.manifest_path.is_file():
            raise StorageError(f"story {self.story.story.id} has no manifest: the job was"
                               f" {self.finished.status or 'not finished'}")
        document = manifest.parse(self.manifest_path.read_bytes(), key)
        return manifest.Written(key, int(document["version"]), False, document)

    @property
    def status(self) -> str:
        return self.finished.status

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "complete" else 2

    @property
    def rendered(self) -> int:
        return sum(o.rendered for o in self.outcomes)

    @property
    def reused(self) -> int:
        return sum(o.reused for o in self.outcomes)

    @property
    def stored(self) -> int:
        return sum(o.stored for o in self.outcomes)


def prepare(story_file: Path, presets_dir: Path | None = None) -> tuple[Story, dict[str, Preset]]:
    """Load presets and the story (its subtitles checked against the station's limits); raises
    InvalidPreset / InvalidStory."""
    presets = load_presets(presets_dir)
    story = load_story(story_file, presets, subtitle_limits=load_limits(presets_dir).subtitles)
    return story, presets


def plan_work(job: jobs.Job, private: LocalStorage, presets: dict[str, Preset],
              previous: dict[str, Any] | None, orders: list[int]) -> list[AssetWork]:
    """One work item per asset of ``orders`` (in that order), on the raw files as stored in the
    private area. An asset being re-run does not reuse its renditions of the re-run's preset
    (:func:`pipeline.run.orchestration.reusable`) and makes them on keys of its own
    (:func:`pipeline.run.orchestration.asset_generations`)."""
    known = manifest.renditions_by_key(previous)
    story = job.story
    work = []
    for order in orders:
        item, asset = job.assets[order - 1], story.assets[order - 1]
        generations = orchestration.asset_generations(private, job, order)
        work.append(AssetWork(
            order=order, path=private.root / raw_key(item.sha256), asset=asset, story=story.story,
            presets=tuple(presets[name] for name in story.asset_presets(asset)),
            known=orchestration.reusable(private, job, order, known), sha256=item.sha256,
            subtitles=private.root / raw_key(item.subtitles_sha256) if item.subtitles_sha256 else None,
            renew=generations.renew, generations=generations.earlier))
    return work


def run_story(
    story_file: Path,
    out_dir: Path,
    *,
    presets_dir: Path | None = None,
    workers: int | None = None,
    public_url: str | None = None,
    limits: Limits | None = None,
    on_event: OnEvent | None = None,
    story: Story | None = None,
    presets: dict[str, Preset] | None = None,
    lock_timeout: float = 3600.0,
) -> RunReport:
    """Process every asset of the story at ``story_file`` into ``out_dir`` and write its manifest.

    ``out_dir/public`` gets the renditions and manifests (what ``public_url`` serves);
    ``out_dir/private`` the raw originals (camera metadata and all), the job's records and the
    per-story lock that keeps two runs of one story from interleaving. Each run is a new job.
    """
    require_raqm()
    if story is None or presets is None:
        story, presets = prepare(story_file, presets_dir)
    public, private = areas(out_dir, public_url)
    emit = on_event or (lambda event: None)
    with private.exclusive(f"story-{story.story.id}", timeout=lock_timeout):
        staged = jobs.stage(story_file, story, presets, private)
        job = jobs.record(private, staged, jobs.new_job_id(), story.story.breaking)
        emit(job_event(job.id, job.story_id, "queued"))
        finished, outcomes = run_job(job, public, private, presets,
                                     limits or load_limits(presets_dir), workers, emit)
    emit(job_event(job.id, job.story_id, finished.status, finished.reason))
    return RunReport(story=story, job=job, manifest_path=public.root / manifest_key(job.story_id),
                     finished=finished, outcomes=[outcomes[a.order] for a in job.assets
                                                  if a.order in outcomes])


def run_job(job: jobs.Job, public: LocalStorage, private: LocalStorage, presets: dict[str, Preset],
            limits: Limits, workers: int | None, emit: OnEvent) -> tuple[Finished, dict[int, AssetOutcome]]:
    """Run what is left of a recorded job and finish it. The caller holds the story's lock."""
    outcomes: dict[int, AssetOutcome] = {}
    for round_ in range(1, MAX_ROUNDS + 1):
        todo = orchestration.to_do(private, job)
        if todo:
            emit(job_event(job.id, job.story_id, "running"))
            work = plan_work(job, private, presets, manifest.read_current(public, job.story_id), todo)
            outcomes.update(_execute(job, work, public, private, limits, workers, emit))
        finished = orchestration.finish(public, private, job)
        if finished.status == "canceled":
            recorded = jobs.recorded_orders(private, job.story_id, job.id)
            for order in orchestration.work_order(job):
                if order not in recorded:
                    emit(asset_event(job.id, job.story_id, order, "canceled"))
        if finished.waiting:
            raise StorageError(f"job {job.id}: assets {', '.join(map(str, finished.waiting))} have no"
                               " recorded result after they ran; run the story again")
        if not finished.damaged:
            return finished, outcomes
        if round_ == MAX_ROUNDS:
            break
        orchestration.render_again(private, job, finished.damaged)
    raise StorageError(f"{finished.reason}; gave up after {MAX_ROUNDS} rounds")


def _kill_processes(pool: ProcessPoolExecutor) -> None:
    """Kill the pool's processes (they did not stop when asked). ffmpeg and the photo render
    server die with them (both ask for SIGKILL when their parent dies)."""
    for process in list(pool._processes.values()):
        with contextlib.suppress(OSError, ValueError):
            process.kill()


def areas(out_dir: Path, public_url: str | None = None) -> tuple[LocalStorage, LocalStorage]:
    """The embedded run's two storage areas: ``out_dir/public`` and ``out_dir/private``."""
    return LocalStorage(out_dir / "public", public_url), LocalStorage(out_dir / "private")


def _execute(job: jobs.Job, work: list[AssetWork], public: Storage, private: Storage, limits: Limits,
             workers: int | None, emit: OnEvent) -> dict[int, AssetOutcome]:
    """Run the work items in a process pool, in the order given, each recorded as it finishes.

    An item starts only when a process is free, and only while the job is not canceled. Once it
    is canceled, the running items stop by themselves (they watch the marker too); those still
    running ``STOP_GRACE`` seconds later have their processes killed. Canceled items are not
    recorded: the job's finish marks them ``canceled``."""
    workers = max(1, min(workers or os.cpu_count() or 1, len(work)))

    # spawn: workers are fresh interpreters and direct children of this process (safe next to the
    # progress thread, and their memory shows up in this process's resource usage).
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    stop = threading.Event()

    def pump() -> None:
        while not stop.is_set() or not events.empty():
            try:
                event = events.get(timeout=0.1)
            except queue.Empty:
                continue
            emit(event)

    outcomes: dict[int, AssetOutcome] = {}

    def record(item: AssetWork, outcome: AssetOutcome) -> None:
        orchestration.record_outcome(private, job, item.order, outcome, worker=HOST)
        outcomes[item.order] = outcome

    listener = threading.Thread(target=pump, daemon=True)
    listener.start()
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                 initializer=_init_worker, initargs=(events,),
                                 max_tasks_per_child=16) as pool:
            waiting = deque(work)
            running: dict[Future[AssetOutcome | None], AssetWork] = {}
            canceled_at: float | None = None
            while waiting or running:
                if canceled_at is None and orchestration.is_canceled(private, job.story_id, job.id):
                    canceled_at = time.monotonic()
                    waiting.clear()
                while waiting and len(running) < workers:
                    if orchestration.is_canceled(private, job.story_id, job.id):
                        canceled_at = time.monotonic()
                        waiting.clear()
                        break
                    item = waiting.popleft()
                    try:
                        running[pool.submit(_run_one, item, public, private, limits, job.id,
                                            job.story_id)] = item
                    except BrokenProcessPool:   # a worker died: the pool takes nothing more
                        record(item, _crashed(item))
                if not running:
                    continue
                ended, _ = wait(running, timeout=CANCEL_POLL, return_when=FIRST_COMPLETED)
                for future in ended:
                    item = running.pop(future)
                    outcome = _outcome(future, item, canceled=canceled_at is not None)
                    if outcome is None:
                        emit(asset_event(job.id, job.story_id, item.order, "canceled"))
                    else:
                        record(item, outcome)
                if running and canceled_at is not None and time.monotonic() - canceled_at > STOP_GRACE:
                    _kill_processes(pool)
            return outcomes
    finally:
        stop.set()
        listener.join(timeout=5)
        events.close()
