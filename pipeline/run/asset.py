"""One asset through the pipeline: hash, probe, plan, render what is missing, store, describe.

``process_asset`` is the unit of work both executors run (the embedded process pool and the Celery
tasks), on the raw file as stored in the private area (:mod:`pipeline.run.originals`); the
renditions go to the public area. It never raises for bad input: a failed asset comes back as a
manifest entry with ``status: failed`` and a reason, so the rest of the story goes on. Entries are
built as :mod:`pipeline.model.manifest_types` and handed on as their JSON objects.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pydantic

from pipeline.errors import LimitExceeded, PipelineError, RenderError, UnsupportedMedia
from pipeline.ingest.info import AVInfo, ImageInfo
from pipeline.ingest.limits import Limits
from pipeline.ingest.probe import MediaInfo, probe
from pipeline.model import subtitles
from pipeline.model.embedded_text import EmbeddedText
from pipeline.model.keys import asset_id
from pipeline.model.manifest_types import (
    AssetEntry,
    Failure,
    ImageFacts,
    RenditionHead,
    Source,
    parse_rendition,
    rendition,
)
from pipeline.model.presets import Preset
from pipeline.model.story import Asset, StoryInfo
from pipeline.plan.image import ImagePlan, plan_image
from pipeline.plan.video import AudioPlan, OutputPlan, VideoPlan, plan_video
from pipeline.render.av.clip import RenderedAV, render_video, source_facts
from pipeline.render.image.isolated import render_image_isolated
from pipeline.render.image.ladder import Rendered
from pipeline.storage import IMMUTABLE, Storage, file_sha256

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
    subtitles: Path | None = None
    """The asset's SRT/VTT file, if any."""
    sha256: str | None = None
    """The raw file's SHA-256 when already known (it was stored content-addressed): not hashed again."""
    renew: dict[str, str] = field(default_factory=dict)
    """A re-run's generation by preset name: those presets' renditions are made anew on keys of
    their own (:mod:`pipeline.plan.generations`), never over an object a manifest names."""
    generations: tuple[str, ...] = ()
    """Earlier re-runs' generations of this asset in the story: a preset whose renditions in
    ``known`` were made under one of them is planned under it again, so they are reused."""


@dataclass
class AssetOutcome:
    entry: dict[str, Any]
    """The asset's manifest entry as JSON (an :class:`AssetEntry` written out)."""
    rendered: int = 0
    reused: int = 0
    stored: int = 0
    seconds: float = 0.0
    diagnostics: dict[str, Any] | None = None
    """For a failed render: the ffmpeg command and the tail of its log, for operators."""


def embedded_text(story: StoryInfo, asset: Asset) -> EmbeddedText:
    return EmbeddedText(
        caption=asset.caption, byline=story.byline, credit=asset.credit,
        copyright=asset.copyright if asset.copyright is not None else story.copyright,
        source=story.source, headline=story.title, created=story.published.isoformat(),
        language=story.language)


def _entry(work: AssetWork, sha: str, size: int, info: MediaInfo | None,
           renditions: Sequence[RenditionHead] = ()) -> AssetEntry:
    asset = work.asset
    source = Source(sha256=sha, bytes=size)
    if isinstance(info, ImageInfo):
        source = Source(sha256=sha, bytes=size, mime=info.mime, width=info.width, height=info.height,
                        orientation=info.orientation)
    elif isinstance(info, AVInfo):
        source = source_facts(info, sha, size)
    text = embedded_text(work.story, asset)
    return AssetEntry.model_validate({
        "id": asset_id(sha), "kind": info.kind if isinstance(info, AVInfo) else
        "image" if isinstance(info, ImageInfo) else "unknown", "order": work.order,
        "filename": Path(asset.file).name, "source": source, "caption": asset.caption,
        "credit": asset.credit, "copyright": text.copyright, "focus": tuple(asset.focus),
        "status": "done", "renditions": tuple(renditions)})


def failed_entry(work: AssetWork, code: str, reason: str, retryable: bool = False) -> dict[str, Any]:
    """A failed-asset manifest entry (JSON) for a failure outside ``process_asset`` (a crashed
    worker)."""
    try:
        sha, size = file_sha256(work.path), work.path.stat().st_size
    except OSError:
        sha, size = "0" * 64, 0
    failure = Failure(code=code, reason=reason, retryable=retryable)
    return _entry(work, sha, size, None).failed(failure).to_json()


class _Plan(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def preset(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def mime(self) -> str: ...


class _Made(Protocol):
    @property
    def plan(self) -> Any: ...
    @property
    def path(self) -> Path: ...
    @property
    def bytes(self) -> int: ...
    @property
    def sha256(self) -> str: ...


def _describe(made: _Made, storage: Storage) -> RenditionHead:
    plan = made.plan
    head = RenditionHead(preset=plan.preset, name=plan.name, key=plan.key,
                         url=storage.public_url(plan.key), mime=plan.mime, bytes=made.bytes,
                         sha256=made.sha256)
    if isinstance(made, Rendered):
        return rendition(head, ImageFacts(width=made.width, height=made.height, layout=made.plan.layout))
    if isinstance(made, RenderedAV):
        return rendition(head, made.facts)
    raise TypeError(f"no manifest entry for {type(made).__name__}")


def _reusable(plan: _Plan, work: AssetWork, storage: Storage) -> RenditionHead | None:
    """The previous manifest's rendition of ``plan`` when every object it names is stored and
    right (checked by SHA-256), with its URL as this storage gives it."""
    known = work.known.get(plan.key)
    if known is None:
        return None
    try:
        previous = parse_rendition(known)
    except pydantic.ValidationError:
        return None   # not a rendition these types know: make it again
    if not all(storage.exists(part.key, part.sha256) for part in previous.objects()):
        return None
    return previous.model_copy(update={"url": storage.public_url(plan.key)})


Render = Callable[[list[Any], Path, Callable[[Any], None]], object]


def generations_in_force(work: AssetWork, plan: Callable[[Mapping[str, str]], Sequence[_Plan]]
                         ) -> dict[str, str]:
    """The generation each preset is planned under: a re-run's for its presets; for the others the
    earlier generation (or none) under which most of the preset's planned keys are in ``known``,
    so that a later job reuses the renditions the current manifest names."""
    names = {preset.label: preset.name for preset in work.presets}
    chosen: dict[str, str] = {}
    if work.generations and work.known:
        best: Counter[str] = Counter()
        for generation in ("", *work.generations):
            hits = Counter(names[p.preset] for p in plan(dict.fromkeys(names.values(), generation))
                           if p.key in work.known)
            for name, count in hits.items():
                if count > best[name]:
                    best[name], chosen[name] = count, generation
    return {**{name: g for name, g in chosen.items() if g}, **work.renew}


def _produce(work: AssetWork, plans: Sequence[_Plan], render: Render, storage: Storage,
             outcome: AssetOutcome, scratch_root: Path | None) -> list[RenditionHead]:
    """Reuse what is stored and right, render the rest into scratch, store each file as it is
    finished; return the manifest entries in plan order."""
    by_key: dict[str, RenditionHead] = {}
    missing = []
    for plan in plans:
        reused = _reusable(plan, work, storage)
        if reused is None:
            missing.append(plan)
        else:
            by_key[plan.key] = reused
    outcome.reused = len(by_key)
    if missing:
        scratch = Path(tempfile.mkdtemp(prefix="storymedia-", dir=scratch_root))
        try:
            def store(made: _Made) -> None:
                plan = made.plan
                for key, path, mime in getattr(made, "extras", ()):   # before what points to them
                    if storage.put_file(key, path, sha256=file_sha256(path), content_type=mime,
                                        cache_control=IMMUTABLE):
                        outcome.stored += 1
                if storage.put_file(plan.key, made.path, sha256=made.sha256, content_type=plan.mime,
                                    cache_control=IMMUTABLE):
                    outcome.stored += 1
                made.path.unlink(missing_ok=True)
                by_key[plan.key] = _describe(made, storage)
                outcome.rendered += 1

            render(missing, scratch, store)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return [by_key[p.key] for p in plans]


def _image_renditions(work: AssetWork, info: ImageInfo, sha: str, storage: Storage,
                      outcome: AssetOutcome, report: Progress, scratch_root: Path | None,
                      limits: Limits | None = None) -> list[RenditionHead]:
    def plan(generations: Mapping[str, str]) -> list[ImagePlan]:
        return plan_image(info, sha, list(work.presets), embedded_text(work.story, work.asset),
                          work.asset.focus, work.asset.branded, generations)

    plans = plan(generations_in_force(work, plan))
    labels = [p.label for p in work.presets]
    plans.sort(key=lambda p: (labels.index(p.preset), -p.width, p.spec.format))

    def render(missing: list[ImagePlan], scratch: Path, store: Callable[[Any], None]) -> None:
        missing.sort(key=lambda p: p.scale, reverse=True)   # largest first: the cascade
        total = len(missing)
        report("rendering", 0, total)

        def stored(made: Rendered) -> None:
            store(made)
            report("rendering", outcome.rendered, total)

        render_image_isolated(work.path, info, missing, scratch, on_done=stored, limits=limits)

    return _produce(work, plans, render, storage, outcome, scratch_root)


def _clip_renditions(work: AssetWork, info: AVInfo, sha: str, storage: Storage,
                     outcome: AssetOutcome, report: Progress, scratch_root: Path | None
                     ) -> list[RenditionHead]:
    cues: tuple[subtitles.Cue, ...] = ()
    if work.subtitles is not None:
        cues = tuple(subtitles.load(work.subtitles, work.asset.subtitles or "subtitles"))
    def plan_with(generations: Mapping[str, str]) -> VideoPlan:
        return plan_video(info, sha, list(work.presets), embedded_text(work.story, work.asset),
                          work.asset.lower_third, work.asset.poster_time, work.asset.branded, cues,
                          generations)

    plan = plan_with(generations_in_force(work, lambda generations: plan_with(generations).everything))
    if not plan.everything:
        names = ", ".join(p.name for p in work.presets)
        what = "clip" if info.kind == "video" else "audio (add the radio preset)"
        raise UnsupportedMedia(f"none of this asset's presets ({names}) makes {what} renditions",
                               code="no-preset-for-kind")
    report("rendering", 0, 100)

    def render(missing: list[OutputPlan | AudioPlan], scratch: Path, store: Callable[[Any], None]) -> None:
        render_video(work.path, plan.only({m.key for m in missing}), scratch,
                     on_progress=lambda f: report("rendering", round(f * 100), 100), on_done=store)

    return _produce(work, plan.everything, render, storage, outcome, scratch_root)


def process_asset(work: AssetWork, storage: Storage, limits: Limits, scratch_root: Path | None = None,
                  progress: Progress | None = None) -> AssetOutcome:
    """Run one asset end to end. Bad input gives a failed entry; storage trouble raises."""
    report = progress or (lambda stage, done, total: None)
    started = time.monotonic()
    report("probing", 0, 1)
    size = work.path.stat().st_size
    sha = work.sha256 or file_sha256(work.path)
    info: MediaInfo | None = None
    outcome = AssetOutcome(entry={})
    try:
        info = probe(work.path, limits)
        if isinstance(info, ImageInfo):
            made = _image_renditions(work, info, sha, storage, outcome, report, scratch_root, limits)
        else:
            made = _clip_renditions(work, info, sha, storage, outcome, report, scratch_root)
        entry = _entry(work, sha, size, info, made).to_json()
        report("done", 1, 1)
    except PipelineError as exc:
        if exc.retryable and not isinstance(exc, LimitExceeded):
            raise   # storage trouble: the executor retries or stops the run
        failure = Failure(code=exc.code, reason=exc.reason, retryable=exc.retryable)
        entry = _entry(work, sha, size, info).failed(failure).to_json()
        if isinstance(exc, RenderError) and exc.command:
            outcome.diagnostics = {"command": exc.command, "log_tail": exc.log_tail[-4000:]}
        report("failed", 1, 1)
    except MemoryError:
        entry = failed_entry(work, "out-of-memory",
                             "the file needs more memory than this machine allows")
        report("failed", 1, 1)
    outcome.entry = entry
    outcome.seconds = time.monotonic() - started
    return outcome
