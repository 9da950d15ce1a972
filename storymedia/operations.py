"""The operators' commands: ``cancel`` a job and ``rerun`` one asset of a job.

With ``--out DIR`` they act on an embedded data folder (the one ``storymedia run --out DIR`` and
``storymedia serve --out DIR`` use): ``cancel`` writes the job's cancel marker, which a run or a
service working on that folder obeys within a second; ``rerun`` records the re-run and runs the
job here, like ``run``, with progress. Without ``--out`` they act on the cluster (broker and stores
from the same flags and environment as ``status``): ``cancel`` writes the marker the workers obey;
``rerun`` records the re-run and queues the job (``--wait`` follows it).

What a cancel and a re-run mean is :mod:`pipeline.run.orchestration`'s, the same for the HTTP
service's ``POST /v1/jobs/{id}/cancel`` and ``.../assets/{order}/rerun``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from pipeline.errors import InvalidPreset, StorageError
from pipeline.model.story import SLUG
from pipeline.run import jobs, orchestration
from pipeline.storage import LocalStorage, Storage
from storymedia.cli import EXIT_OK, EXIT_PARTIAL, STAGE_STYLE, STATUS_STYLE, guard, out, shown
from storymedia.cluster import _cluster_options, _connected, _follow

if TYPE_CHECKING:
    from pipeline.run.orchestration import JobEvent

OUT_HELP = ("The embedded data folder (of `storymedia run --out` or `storymedia serve --out`);"
            " without it, the cluster.")


def find_job(private: Storage, job_or_story: str) -> tuple[str, str]:
    """(story id, job id) for a job id, or for a story id (its latest job), from the job records."""
    if jobs.JOB_ID.fullmatch(job_or_story):
        for key in private.list("stories/"):
            if key.endswith(f"/jobs/{job_or_story}.json") and key.count("/") == 3:
                return key.split("/")[1], job_or_story
        raise StorageError(f"no job {job_or_story} in {private.url}")
    if not SLUG.fullmatch(job_or_story):
        raise StorageError(f"{job_or_story!r} is neither a job id (20261128-021800-3f9a1c) nor a story id")
    found = jobs.story_jobs(private, job_or_story)
    if not found:
        raise StorageError(f"no story or job called {job_or_story!r} in {private.url}")
    return job_or_story, found[-1]


def _canceled(private: Storage, story_id: str, job_id: str, who: str) -> int:
    if orchestration.cancel(private, story_id, job_id, f"canceled from the command line ({who})"):
        out.print(f"Job {shown(job_id)} of story {shown(story_id)} is being canceled: its running work"
                  " stops within a second or two, nothing more starts, and the story's manifest is"
                  " not replaced.", highlight=False)
    else:
        done = jobs.read_done(private, story_id, job_id) or {}
        out.print(f"Job {shown(job_id)} of story {shown(story_id)} had already finished"
                  f" ({shown(done.get('status', 'final'))}): nothing to cancel.", highlight=False)
    return EXIT_OK


@click.command()
@click.argument("job_or_story")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help=OUT_HELP)
@_cluster_options
def cancel(job_or_story: str, out_dir: Path | None, **urls: str | None) -> None:
    """Cancel a job (or a story's latest job): running ffmpeg is stopped, nothing half-stored is
    kept, assets not started do not start, the story's manifest stays as it is and the job ends
    `canceled`. A job already finished is left as it is (exit 0 either way)."""
    def body() -> int:
        if out_dir is not None:
            private = _folder(out_dir)[1]
            story_id, job_id = find_job(private, job_or_story)
            return _canceled(private, story_id, job_id, "embedded")
        from workers import client

        with _connected(urls) as ctx:
            story_id, job_id = client.find_job(ctx, job_or_story)
            return _canceled(ctx.private, story_id, job_id, "cluster")

    sys.exit(guard(body))


@click.command()
@click.argument("job_or_story")
@click.argument("order", type=click.IntRange(1, 10_000))
@click.option("--preset", default=None, metavar="NAME",
              help="Only this preset's renditions of the asset (default: all of its presets).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help=OUT_HELP)
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="With --out: processes to render with (default: one per CPU core).")
@click.option("--presets", "presets_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="With --out: preset folder (default: $STORYMEDIA_PRESETS or the bundled presets/).")
@click.option("--public-url", default=None, metavar="URL",
              help="With --out: base URL OUT/public is served from (as for `run`).")
@click.option("--wait", is_flag=True, help="Cluster: follow the job to the end; exit code as for `run`.")
@click.option("--timeout", type=float, default=None, help="With --wait: give up after this many seconds.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@_cluster_options
def rerun(job_or_story: str, order: int, preset: str | None, out_dir: Path | None, workers: int | None,
          presets_dir: Path | None, public_url: str | None, wait: bool, timeout: float | None, quiet: bool,
          **urls: str | None) -> None:
    """Render asset ORDER of a finished job (or of a story's latest job) again, reusing none of
    its renditions (of --preset, or of all its presets); the story's manifest goes to its next
    version even when the bytes come out the same. Exit 0 when the job ends complete, 2 when not."""
    def body() -> int:
        if out_dir is not None:
            return _rerun_here(out_dir, job_or_story, order, preset, workers, presets_dir, public_url, quiet)
        from workers import client
        from workers.reconcile import enqueue

        with _connected(urls) as ctx:
            story_id, job_id = client.find_job(ctx, job_or_story)
            job = jobs.read_job(ctx.private, story_id, job_id)
            _check_presets(job, {name: p.label for name, p in ctx.presets.items()})
            orchestration.rerun(ctx.private, job, [order], preset=preset)
            enqueue(job, ctx)
            out.print(f"Asset {order} ({shown(job.assets[order - 1].file)}) of job {shown(job_id)} is"
                      f" rendered again{_with(preset)}.", highlight=False)
            if not wait:
                out.print(f"Follow it with: storymedia status {shown(job_id)}", highlight=False)
                return EXIT_OK
            return _follow(ctx, story_id, job_id, timeout, quiet)

    sys.exit(guard(body))


def _with(preset: str | None) -> str:
    return f" with {shown(preset)}" if preset else ""


def _folder(out_dir: Path, public_url: str | None = None) -> tuple[LocalStorage, LocalStorage]:
    """The folder's public and private areas; StorageError when it holds no storymedia data."""
    from pipeline.run.embedded import areas

    if not (out_dir / "private").is_dir():
        raise StorageError(f"{out_dir} holds no storymedia data (no {out_dir / 'private'})")
    return areas(out_dir, public_url)


def _check_presets(job: jobs.Job, here: dict[str, str]) -> None:
    """The job is re-run with the presets it was made with, or not at all."""
    wrong = [f"{label} (here: {here.get(name, 'none')})" for name, label in job.presets.items()
             if here.get(name) != label]
    if wrong:
        raise InvalidPreset(f"job {job.id} was made with presets {', '.join(wrong)}: submit the story"
                            " again to render it with these presets")


def _rerun_here(out_dir: Path, job_or_story: str, order: int, preset: str | None, workers: int | None,
                presets_dir: Path | None, public_url: str | None, quiet: bool) -> int:
    from pipeline.ingest.limits import load_limits
    from pipeline.model.presets import load_presets
    from pipeline.render.graphics.text import require_raqm
    from pipeline.run.embedded import run_job

    require_raqm()
    public, private = _folder(out_dir, public_url)
    story_id, job_id = find_job(private, job_or_story)
    job = jobs.read_job(private, story_id, job_id)
    presets = load_presets(presets_dir)
    _check_presets(job, {name: p.label for name, p in presets.items()})
    orchestration.rerun(private, job, [order], preset=preset)
    out.print(f"Asset {order} ({shown(job.assets[order - 1].file)}) of job {shown(job_id)}, story"
              f" {shown(story_id)}: rendered again{_with(preset)}", highlight=False)
    progress = Progress(TextColumn("{task.description:<18}"), BarColumn(bar_width=28),
                        TextColumn("{task.fields[stage]}"), TimeElapsedColumn(),
                        console=out, disable=quiet, transient=False)
    bar = progress.add_task(shown(Path(job.assets[order - 1].file).name), total=100,
                            stage="[dim]waiting[/]")

    def on_event(event: JobEvent) -> None:
        if event.order != order:
            return
        style = STAGE_STYLE.get(event.state, "white")
        done = 100 if event.state in ("done", "failed", "canceled") else (
            round(100 * event.done / event.total) if event.state == "rendering" and event.total else None)
        progress.update(bar, completed=done, stage=f"[{style}]{event.state}[/]")

    with progress, private.exclusive(f"story-{story_id}", timeout=3600):
        finished, outcomes = run_job(job, public, private, presets, load_limits(presets_dir), workers,
                                     on_event)
    outcome = outcomes.get(order)
    if outcome is not None:
        problem = outcome.entry.get("error") or {}
        out.print(f"{outcome.rendered} renditions made, {outcome.reused} reused, {outcome.stored} objects"
                  f" stored{'; ' + shown(problem.get('reason', '')) if problem else ''}", highlight=False)
    if finished.status == "canceled":
        out.print(f"Status: [bold {STATUS_STYLE['canceled']}]canceled[/]"
                  + (f" ({shown(finished.reason)})" if finished.reason else ""), highlight=False)
        return EXIT_PARTIAL
    how = "written" if finished.written is not None and finished.written.changed else "kept"
    out.print(f"Manifest v{finished.version} {how}"
              + (" (a later job's manifest stands)" if finished.superseded else ""), highlight=False)
    out.print(f"Status: [bold {STATUS_STYLE.get(finished.status, 'white')}]{shown(finished.status)}[/]",
              highlight=False)
    return EXIT_OK if finished.status == "complete" else EXIT_PARTIAL

