"""One asset through the pipeline: hash, probe, plan, render what is missing, store, describe.

``process_asset`` is the unit of work both executors run (the embedded process pool now, Celery
workers later). It never raises for bad input: a failed asset comes back as a manifest entry
with ``status: failed`` and a reason, so the rest of the story goes on.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError
from pipeline.image import Rendered, render_image
from pipeline.keys import asset_id, raw_key
from pipeline.metadata import EmbeddedText
from pipeline.plan import ImagePlan, plan_image
from pipeline.presets import Preset
from pipeline.probe import ImageInfo, Limits, probe
from pipeline.storage import IMMUTABLE, Storage, file_sha256
from pipeline.story import Asset, StoryInfo

Progress = Callable[[str, int, int], None]
"""Called with (stage, done, total) as the asset moves: probing, rendering, storing, done."""


@dataclass(frozen=True)
class AssetWork:
    """Everything one asset needs, small and picklable (no pixels, no open files)."""

    order: int
    path: Path
    asset: Asset
    story: StoryInfo
    presets: tuple[Preset, ...]
    known: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Rendition entries of the previous manifest by key: reused when the object checks out."""


@dataclass
class AssetOutcome:
    entry: dict[str, Any]
    rendered: int = 0
    reused: int = 0
    stored: int = 0
    seconds: float = 0.0


def embedded_text(story: StoryInfo, asset: Asset) -> EmbeddedText:
    return EmbeddedText(
        caption=asset.caption, byline=story.byline, credit=asset.credit,
        copyright=asset.copyright if asset.copyright is not None else story.copyright,
        source=story.source, headline=story.title, created=story.published.isoformat(),
        language=story.language)


def _entry(work: AssetWork, sha: str, size: int, info: ImageInfo | None) -> dict[str, Any]:
    asset = work.asset
    source: dict[str, Any] = {"sha256": sha, "bytes": size}
    if info is not None:
        source.update(key=raw_key(sha), mime=info.mime, width=info.width, height=info.height,
                      orientation=info.orientation)
    text = embedded_text(work.story, asset)
    return {
        "id": asset_id(sha), "kind": info.kind if info else "unknown", "order": work.order,
        "filename": Path(asset.file).name, "source": source, "caption": asset.caption,
        "credit": asset.credit, "copyright": text.copyright, "focus": list(asset.focus),
        "status": "done", "renditions": [],
    }


def failed_entry(work: AssetWork, code: str, reason: str, retryable: bool = False) -> dict[str, Any]:
    """A failed-asset manifest entry for a failure outside ``process_asset`` (a crashed worker)."""
    try:
        sha, size = file_sha256(work.path), work.path.stat().st_size
    except OSError:
        sha, size = "0" * 64, 0
    entry = _entry(work, sha, size, None)
    entry.update(status="failed", error={"code": code, "reason": reason, "retryable": retryable})
    return entry


def _rendition(plan: ImagePlan, size: int, sha: str, storage: Storage) -> dict[str, Any]:
    return {
        "preset": plan.preset, "name": plan.name, "key": plan.key,
        "url": storage.public_url(plan.key), "mime": plan.mime, "bytes": size, "sha256": sha,
        "width": plan.width, "height": plan.height, "layout": plan.layout,
    }


def _reusable(plan: ImagePlan, work: AssetWork, storage: Storage) -> dict[str, Any] | None:
    entry = work.known.get(plan.key)
    if entry is None or not storage.exists(plan.key, entry["sha256"]):
        return None
    return {**entry, "url": storage.public_url(plan.key)}


def process_asset(work: AssetWork, storage: Storage, limits: Limits, scratch_root: Path | None = None,
                  progress: Progress | None = None) -> AssetOutcome:
    """Run one asset end to end. Bad input gives a failed entry; storage trouble raises."""
    report = progress or (lambda stage, done, total: None)
    started = time.monotonic()
    report("probing", 0, 1)
    size = work.path.stat().st_size
    sha = file_sha256(work.path)
    info: ImageInfo | None = None
    outcome = AssetOutcome(entry={})
    try:
        info = probe(work.path, limits)
        entry = _entry(work, sha, size, info)
        plans = plan_image(info, sha, list(work.presets), embedded_text(work.story, work.asset),
                           work.asset.focus, work.asset.branded)
        by_key: dict[str, dict[str, Any]] = {}
        missing = []
        for plan in plans:
            reused = _reusable(plan, work, storage)
            if reused is None:
                missing.append(plan)
            else:
                by_key[plan.key] = reused
        outcome.reused = len(by_key)
        total = len(missing)
        report("rendering", 0, total)
        if storage.put_file(raw_key(sha), work.path, sha256=sha, content_type=info.mime,
                            cache_control=IMMUTABLE):
            outcome.stored += 1
        if missing:
            scratch = Path(tempfile.mkdtemp(prefix="storymedia-", dir=scratch_root))
            try:
                def store(rendered: Rendered) -> None:
                    plan = rendered.plan
                    if storage.put_file(plan.key, rendered.path, sha256=rendered.sha256,
                                        content_type=plan.mime, cache_control=IMMUTABLE):
                        outcome.stored += 1
                    rendered.path.unlink(missing_ok=True)
                    by_key[plan.key] = _rendition(plan, rendered.bytes, rendered.sha256, storage)
                    outcome.rendered += 1
                    report("rendering", outcome.rendered, total)

                render_image(work.path, info, missing, scratch, on_done=store)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        labels = [p.label for p in work.presets]
        ordered = sorted(plans, key=lambda p: (labels.index(p.preset), -p.width, p.spec.format))
        entry["renditions"] = [by_key[p.key] for p in ordered]
        report("done", 1, 1)
    except PipelineError as exc:
        if exc.retryable:
            raise
        entry = _entry(work, sha, size, info)
        entry["status"] = "failed"
        entry["renditions"] = []
        entry["error"] = {"code": exc.code, "reason": exc.reason, "retryable": exc.retryable}
        report("failed", 1, 1)
    except MemoryError:
        entry = failed_entry(work, "out-of-memory",
                             "the file needs more memory than this machine allows")
        report("failed", 1, 1)
    outcome.entry = entry
    outcome.seconds = time.monotonic() - started
    return outcome
