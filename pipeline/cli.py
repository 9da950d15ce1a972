"""The ``storymedia`` command line.

Exit codes: 0 every asset done; 2 some assets failed (manifest status ``partial`` or ``failed``);
1 the story or a preset is invalid; 3 storage or internal error. No traceback reaches the user:
unexpected errors print one line and leave the details in a log file.
"""

from __future__ import annotations

import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipeline import __version__
from pipeline.errors import InvalidPreset, InvalidStory, PipelineError
from pipeline.presets import default_presets_dir, load_presets

EXIT_OK, EXIT_INVALID, EXIT_PARTIAL, EXIT_ERROR = 0, 1, 2, 3

out = Console()
err = Console(stderr=True)

_STAGE_STYLE = {"probing": "cyan", "rendering": "yellow", "done": "green", "failed": "red"}


def _guard(action: Callable[[], int]) -> int:
    """Run a command body, turning every error into one line and an exit code."""
    try:
        return action()
    except (InvalidStory, InvalidPreset) as exc:
        err.print(f"[bold red]error:[/] {exc.reason}", markup=True, highlight=False)
        return EXIT_INVALID
    except PipelineError as exc:
        err.print(f"[bold red]error:[/] {exc.reason}", markup=True, highlight=False)
        return EXIT_ERROR
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except Exception as exc:  # the last line of defence: no traceback for users
        with tempfile.NamedTemporaryFile("w", prefix="storymedia-error-", suffix=".log",
                                         delete=False) as log:
            traceback.print_exc(file=log)
        err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc}"
                  f" (details in {log.name})", markup=True, highlight=False)
        return EXIT_ERROR


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="storymedia")
def cli() -> None:
    """storymedia: a story's photos made ready for web, broadcast and social.

    \b
    Producers describe a story in a TOML file (title, byline, date, source and the assets with
    captions and credits); storymedia turns every asset into the renditions its presets define,
    embeds caption, byline, credit and copyright, adds the station logo, stores everything under
    content-addressed keys and writes one manifest per story, last.

    \b
    Quick start:
      storymedia run examples/thanh-hoa/story.toml --out out
      storymedia presets
    """


@cli.command()
@click.argument("story_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("out"), show_default=True,
              help="Folder the renditions and manifest are written to (the local store).")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Processes to render with (default: one per CPU core).")
@click.option("--presets", "presets_dir", type=click.Path(path_type=Path, file_okay=False),
              default=None, help="Preset folder (default: $STORYMEDIA_PRESETS or the bundled presets/).")
@click.option("--public-url", default=None, metavar="URL",
              help="Base URL the out folder is served from; manifest URLs become URL/<key>"
                   " (default: URLs are the keys, relative to the out folder).")
@click.option("--quiet", is_flag=True, help="No progress bars; summary and manifest path only.")
def run(story_file: Path, out_dir: Path, workers: int | None, presets_dir: Path | None,
        public_url: str | None, quiet: bool) -> None:
    """Process STORY_FILE here, in-process, into a local folder (no Redis or S3 needed).

    Writes OUT/stories/<story id>/manifest.json with keys relative to OUT. A second run redoes
    nothing that is already right. Exit code 0: every asset done; 2: some assets failed (the
    manifest says which and why); 1: the story file is invalid.
    """
    sys.exit(_guard(lambda: _run(story_file, out_dir, workers, presets_dir, public_url, quiet)))


def _run(story_file: Path, out_dir: Path, workers: int | None, presets_dir: Path | None,
         public_url: str | None, quiet: bool) -> int:
    from pipeline.embedded import prepare, run_story

    story, presets = prepare(story_file, presets_dir)
    names = {index + 1: Path(a.file).name for index, a in enumerate(story.assets)}
    progress = Progress(
        TextColumn("{task.description:<18}"), BarColumn(bar_width=28), MofNCompleteColumn(),
        TextColumn("{task.fields[stage]}"), TimeElapsedColumn(),
        console=out, disable=quiet, transient=False)
    tasks = {order: progress.add_task(name, total=None, stage="[dim]waiting[/]")
             for order, name in names.items()}

    def on_event(event: tuple[int, str, int, int]) -> None:
        order, stage, done, total = event
        style = _STAGE_STYLE.get(stage, "white")
        if stage in ("done", "failed"):
            task = progress.tasks[tasks[order]]
            final = task.total if task.total else 1
            progress.update(tasks[order], total=final, completed=final, stage=f"[{style}]{stage}[/]")
        elif stage == "rendering":
            progress.update(tasks[order], total=max(total, 1), completed=done,
                            stage=f"[{style}]{stage}[/]")
        else:
            progress.update(tasks[order], stage=f"[{style}]{stage}[/]")

    out.print(f"[bold]{story.story.title}[/] ({story.story.id}): {len(story.assets)} assets,"
              f" presets {', '.join(story.story.presets)}", highlight=False)
    with progress:
        report = run_story(story_file, out_dir, workers=workers, public_url=public_url,
                           on_event=on_event, story=story, presets=presets)
    _summary(report.written.document, report.outcomes)
    if report.rendered == 0 and not report.written.changed:
        out.print(f"Nothing to do: all {report.reused} renditions were already stored and"
                  f" checked; manifest v{report.written.version} unchanged.")
    else:
        out.print(f"{report.rendered} renditions made, {report.reused} reused,"
                  f" {report.stored} objects stored; manifest v{report.written.version}"
                  f"{' written' if report.written.changed else ' unchanged'}.")
    colour = {"complete": "green", "partial": "yellow", "failed": "red"}[report.status]
    out.print(f"Status: [bold {colour}]{report.status}[/]")
    out.print(f"Manifest: {report.manifest_path}", highlight=False, soft_wrap=True)
    return report.exit_code


def _summary(document: dict[str, Any], outcomes: list[Any]) -> None:
    table = Table(title="Assets", title_justify="left")
    for column in ("#", "file", "status", "renditions", "new", "seconds", "reason"):
        table.add_column(column, overflow="fold")
    for asset, outcome in zip(document["assets"], outcomes, strict=True):
        ok = asset["status"] == "done"
        table.add_row(
            str(asset["order"]), asset["filename"],
            "[green]done[/]" if ok else "[red]failed[/]",
            str(len(asset["renditions"])), str(outcome.rendered), f"{outcome.seconds:.1f}",
            "" if ok else asset["error"]["reason"])
    out.print(table)


@cli.command("presets")
@click.option("--presets", "presets_dir", type=click.Path(path_type=Path, file_okay=False),
              default=None, help="Preset folder (default: $STORYMEDIA_PRESETS or the bundled presets/).")
def presets_command(presets_dir: Path | None) -> None:
    """List the presets and the renditions each one makes."""

    def body() -> int:
        loaded = load_presets(presets_dir)
        table = Table(title=f"Presets in {presets_dir or default_presets_dir()}", title_justify="left")
        for column in ("preset", "description", "renditions"):
            table.add_column(column, overflow="fold")
        for preset in loaded.values():
            renditions = ", ".join(
                f"{s.name} {s.format}" + (f" {s.width}x{s.height}" if s.height else "")
                for s in preset.images)
            table.add_row(preset.label, preset.description, renditions)
        out.print(table)
        return EXIT_OK

    sys.exit(_guard(body))


def main() -> None:
    cli()
