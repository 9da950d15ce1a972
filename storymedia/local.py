"""The local commands: ``run`` (a story, in-process, into a folder) and ``presets``.

Nothing here needs a cluster, and nothing here imports it: no ``workers``, Celery, kombu or Redis
(an import contract in pyproject.toml checks it).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipeline.model.presets import (
    AudioOutput,
    HlsOutput,
    Mp4Output,
    PosterOutput,
    Preset,
    SpriteOutput,
    VideoOutput,
    WebVttOutput,
    XdcamOutput,
    default_presets_dir,
    load_presets,
)
from storymedia.cli import EXIT_OK, STAGE_STYLE, STATUS_STYLE, guard, out, shown

if TYPE_CHECKING:   # the run's modules load when a run starts: `storymedia presets` stays quick
    from pipeline.run.orchestration import JobEvent


@click.command()
@click.argument("story_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("out"), show_default=True,
              help="Folder to write into: OUT/public gets the renditions and manifests (what"
                   " --public-url serves), OUT/private the raw originals (never publish it).")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Processes to render with (default: one per CPU core).")
@click.option("--presets", "presets_dir", type=click.Path(path_type=Path, file_okay=False),
              default=None, help="Preset folder (default: $STORYMEDIA_PRESETS or the bundled presets/).")
@click.option("--public-url", default=None, metavar="URL",
              help="Base URL OUT/public is served from; manifest URLs become URL/<key>"
                   " (default: URLs are the keys, relative to OUT/public).")
@click.option("--quiet", is_flag=True, help="No progress bars; summary and manifest path only.")
def run(story_file: Path, out_dir: Path, workers: int | None, presets_dir: Path | None,
        public_url: str | None, quiet: bool) -> None:
    """Process STORY_FILE here, in-process, into a local folder (no Redis or S3 needed).

    Writes OUT/public/stories/<story id>/manifest.json with keys relative to OUT/public; the raw
    originals (camera GPS and serials included) stay in OUT/private. A second run redoes
    nothing that is already right. Exit code 0: every asset done; 2: some assets failed (the
    manifest says which and why); 1: the story file is invalid.
    """
    sys.exit(guard(lambda: _run(story_file, out_dir, workers, presets_dir, public_url, quiet)))


def _run(story_file: Path, out_dir: Path, workers: int | None, presets_dir: Path | None,
         public_url: str | None, quiet: bool) -> int:
    from pipeline.run.embedded import prepare, run_story

    story, presets = prepare(story_file, presets_dir)
    names = {index + 1: Path(a.file).name for index, a in enumerate(story.assets)}
    progress = Progress(
        TextColumn("{task.description:<18}"), BarColumn(bar_width=28), MofNCompleteColumn(),
        TextColumn("{task.fields[stage]}"), TimeElapsedColumn(),
        console=out, disable=quiet, transient=False)
    tasks = {order: progress.add_task(shown(name), total=None, stage="[dim]waiting[/]")
             for order, name in names.items()}

    def on_event(event: JobEvent) -> None:
        if event.about_job:
            return
        order, stage, done, total = event.order, event.state, event.done, event.total
        style = STAGE_STYLE.get(stage, "white")
        if stage in ("done", "failed", "canceled"):
            task = progress.tasks[tasks[order]]
            final = task.total if task.total else 1
            progress.update(tasks[order], total=final, completed=final, stage=f"[{style}]{stage}[/]")
        elif stage == "rendering":
            progress.update(tasks[order], total=max(total, 1), completed=done,
                            stage=f"[{style}]{stage}[/]")
        else:
            progress.update(tasks[order], stage=f"[{style}]{stage}[/]")

    out.print(f"[bold]{shown(story.story.title)}[/] ({shown(story.story.id)}): {len(story.assets)}"
              f" assets, presets {shown(', '.join(story.story.presets))}", highlight=False)
    with progress:
        report = run_story(story_file, out_dir, workers=workers, public_url=public_url,
                           on_event=on_event, story=story, presets=presets, presets_dir=presets_dir)
    if report.status == "canceled":
        out.print(f"Canceled: {report.rendered} renditions made before the cancel; the story's"
                  " manifest was not replaced.")
        out.print(f"Status: [bold {STATUS_STYLE['canceled']}]canceled[/]")
        return report.exit_code
    _summary(report.written.document, report.outcomes)
    if report.rendered == 0 and not report.written.changed:
        out.print(f"Nothing to do: all {report.reused} renditions were already stored and"
                  f" checked; manifest v{report.written.version} unchanged.")
    else:
        out.print(f"{report.rendered} renditions made, {report.reused} reused,"
                  f" {report.stored} objects stored; manifest v{report.written.version}"
                  f"{' written' if report.written.changed else ' unchanged'}.")
    out.print(f"Status: [bold {STATUS_STYLE[report.status]}]{report.status}[/]")
    out.print(f"Manifest: {shown(report.manifest_path)}", highlight=False, soft_wrap=True)
    return report.exit_code


def _summary(document: dict[str, Any], outcomes: list[Any]) -> None:
    table = Table(title="Assets", title_justify="left")
    for column in ("#", "file", "status", "renditions", "new", "seconds", "reason"):
        table.add_column(column, overflow="fold")
    for asset, outcome in zip(document["assets"], outcomes, strict=True):
        problem = asset.get("error") or asset.get("update_failed")
        if problem is None:
            state = "[green]done[/]"
        elif asset["status"] == "done":   # this run failed; the previous renditions stand
            state = "[yellow]kept previous[/]"
        else:
            state = "[red]failed[/]"
        table.add_row(
            str(asset["order"]), shown(asset["filename"]), state,
            str(len(asset["renditions"])), str(outcome.rendered), f"{outcome.seconds:.1f}",
            shown(problem["reason"]) if problem else "")
    out.print(table)


@click.command("presets")
@click.option("--presets", "presets_dir", type=click.Path(path_type=Path, file_okay=False),
              default=None, help="Preset folder (default: $STORYMEDIA_PRESETS or the bundled presets/).")
def presets_command(presets_dir: Path | None) -> None:
    """List the presets and the renditions each one makes."""

    def body() -> int:
        loaded = load_presets(presets_dir)
        table = Table(title=f"Presets in {shown(presets_dir or default_presets_dir())}",
                      title_justify="left")
        for column in ("preset", "description", "renditions"):
            table.add_column(column, overflow="fold")
        for preset in loaded.values():
            rows = rendition_rows(preset) or [""]
            table.add_row(shown(preset.label), shown(preset.description), shown(rows[0]))
            for row in rows[1:]:
                table.add_row("", "", shown(row))
        out.print(table)
        return EXIT_OK

    sys.exit(guard(body))


def _clip_output(output: VideoOutput) -> str:
    """One clip rendition as ``presets`` lists it: name, type and what sets its size or rate."""
    if isinstance(output, Mp4Output):
        return f"{output.name} mp4 {output.width}x{output.height}"
    if isinstance(output, HlsOutput):
        rungs = " ".join(f"{rung.name} {rung.width}x{rung.height}" for rung in output.rungs)
        return f"{output.name} hls {rungs}"
    if isinstance(output, XdcamOutput):
        return f"{output.name} xdcam {output.bitrate} Mb/s"
    if isinstance(output, PosterOutput):
        return f"{output.name} poster jpeg {output.width} wide"
    if isinstance(output, SpriteOutput):
        return f"{output.name} sprite jpeg {output.width} wide every {output.interval:g} s"
    if isinstance(output, WebVttOutput):
        return f"{output.name} webvtt"
    raise AssertionError(f"no listing for {type(output).__name__}")


def _audio_output(output: AudioOutput) -> str:
    rate = "" if output.type == "bwf" else f" {output.bitrate}k"
    return f"{output.name} {output.type}{rate} {output.loudness.integrated:g} LUFS"


def rendition_rows(preset: Preset) -> list[str]:
    """The renditions ``preset`` makes, one line per kind of asset: images (as ``name format
    [WxH]``), then ``clips: ...`` and ``audio: ...`` where the preset has them."""
    rows = []
    if preset.images:
        rows.append(", ".join(f"{s.name} {s.format}" + (f" {s.width}x{s.height}" if s.height else "")
                              for s in preset.images))
    if preset.video is not None:
        rows.append("clips: " + ", ".join(_clip_output(output) for output in preset.video.outputs))
    if preset.audio is not None:
        clips = " (also from clips)" if preset.audio.from_clips else ""
        rows.append(f"audio{clips}: " + ", ".join(_audio_output(output) for output in preset.audio.outputs))
    return rows
