"""The embedded executor: one story, in-process, on every core, into a local folder.

Assets run in a process pool (one asset per task; a process renders all of an asset's
renditions from one decode). Progress events travel back on a queue. The manifest is written
last, only after every asset has finished and every object is stored.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError
from pipeline.ingest.limits import Limits, load_limits
from pipeline.model import manifest
from pipeline.model.keys import raw_key
from pipeline.model.presets import Preset, load_presets
from pipeline.model.story import Story, load_story
from pipeline.render.graphics.text import require_raqm
from pipeline.run import jobs
from pipeline.run.asset import AssetOutcome, AssetWork, failed_entry, process_asset
from pipeline.storage import LocalStorage, Storage

Event = tuple[int, str, int, int]
"""(asset order, stage, done, total)"""

_events: Any = None


def _init_worker(events: Any) -> None:
    global _events
    _events = events


def _run_one(work: AssetWork, storage: Storage, limits: Limits) -> AssetOutcome:
    def progress(stage: str, done: int, total: int) -> None:
        if _events is not None:
            _events.put((work.order, stage, done, total))

    return process_asset(work, storage, limits, progress=progress)


def _outcome(future: Future[AssetOutcome], work: AssetWork) -> AssetOutcome:
    """The asset's outcome; a worker that died (killed, out of memory) fails only its asset."""
    try:
        return future.result()
    except BrokenProcessPool:
        return AssetOutcome(entry=failed_entry(
            work, "worker-crashed", "processing stopped unexpectedly (the worker process died,"
            " perhaps out of memory); run the story again to retry", retryable=True))
    except PipelineError:
        raise  # storage trouble: the whole run stops and says so
    except Exception as exc:  # a bug or a library failure on strange input: fail this asset only
        return AssetOutcome(entry=failed_entry(
            work, "internal", f"internal error while processing this file ({type(exc).__name__}:"
            f" {exc}); please report it"))


@dataclass
class RunReport:
    story: Story
    manifest_path: Path
    written: manifest.Written
    outcomes: list[AssetOutcome] = field(default_factory=list)

    @property
    def status(self) -> str:
        return str(self.written.document["status"])

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


def plan_work(staged: jobs.Staged, private: LocalStorage, presets: dict[str, Preset],
              previous: dict[str, Any] | None) -> list[AssetWork]:
    """One work item per asset, on the raw files as stored in the private area."""
    known = manifest.renditions_by_key(previous)
    story = staged.story
    return [
        AssetWork(order=item.order, path=private.root / raw_key(item.sha256), asset=asset,
                  story=story.story,
                  presets=tuple(presets[name] for name in story.asset_presets(asset)),
                  known=known, sha256=item.sha256,
                  subtitles=private.root / raw_key(item.subtitles_sha256) if item.subtitles_sha256 else None)
        for item, asset in zip(staged.assets, story.assets, strict=True)
    ]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def run_story(
    story_file: Path,
    out_dir: Path,
    *,
    presets_dir: Path | None = None,
    workers: int | None = None,
    public_url: str | None = None,
    limits: Limits | None = None,
    on_event: Callable[[Event], None] | None = None,
    story: Story | None = None,
    presets: dict[str, Preset] | None = None,
    lock_timeout: float = 3600.0,
) -> RunReport:
    """Process every asset of the story at ``story_file`` into ``out_dir`` and write its manifest.

    ``out_dir/public`` gets the renditions and manifests (what ``public_url`` serves);
    ``out_dir/private`` the raw originals (camera metadata and all) and the per-story lock that
    keeps two runs of one story from interleaving.
    """
    require_raqm()
    if story is None or presets is None:
        story, presets = prepare(story_file, presets_dir)
    public, private = areas(out_dir, public_url)
    with private.exclusive(f"story-{story.story.id}", timeout=lock_timeout):
        staged = jobs.stage(story_file, story, presets, private)
        previous = manifest.read_current(public, story.story.id)
        work = plan_work(staged, private, presets, previous)
        outcomes = _execute(work, public, limits or load_limits(presets_dir), workers, on_event)
        written = manifest.write(public, story, [o.entry for o in outcomes], jobs.new_job_id())
    return RunReport(story=story, manifest_path=public.root / written.key, written=written,
                     outcomes=outcomes)


def areas(out_dir: Path, public_url: str | None = None) -> tuple[LocalStorage, LocalStorage]:
    """The embedded run's two storage areas: ``out_dir/public`` and ``out_dir/private``."""
    return LocalStorage(out_dir / "public", public_url), LocalStorage(out_dir / "private")


def _execute(work: list[AssetWork], storage: Storage, limits: Limits, workers: int | None,
             on_event: Callable[[Event], None] | None) -> list[AssetOutcome]:
    """Run every work item in a process pool, biggest raw file first; outcomes in story order."""
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
            if on_event is not None:
                on_event(event)

    listener = threading.Thread(target=pump, daemon=True)
    listener.start()
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                 initializer=_init_worker, initargs=(events,),
                                 max_tasks_per_child=16) as pool:
            # Biggest raw file first: the clip that takes a minute starts at once and the photos
            # fill the other processes around it, instead of the clip starting last and running
            # alone (longest job first shortens the story's total time).
            futures: dict[int, Future[AssetOutcome]] = {
                item.order: pool.submit(_run_one, item, storage, limits)
                for item in sorted(work, key=lambda item: _size(item.path), reverse=True)}
            return [_outcome(futures[item.order], item) for item in work]
    finally:
        stop.set()
        listener.join(timeout=5)
        events.close()
