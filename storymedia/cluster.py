"""The cluster commands: submit a story, follow and inspect jobs, fetch renditions, and run the
cluster's processes (worker, beat, reconcile).

Each command builds its :class:`workers.settings.Settings` from its flags and the environment and
opens the cluster with exactly those (``workers.context.open_context``): nothing is written to this
process's environment. ``worker`` and ``beat`` become Celery's own program, started with the
settings' broker and stores in its environment (Celery builds ``workers.app.app`` from it).
Broker trouble reaches the user as one line (``workers.broker``), exit 3.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipeline.errors import ConfigError
from pipeline.model.presets import Preset
from pipeline.model.story import Story
from pipeline.redaction import redact
from pipeline.run.embedded import prepare
from storymedia.cli import EXIT_OK, EXIT_PARTIAL, STAGE_STYLE, err, guard, out, shown
from workers import client
from workers.app import QUEUES
from workers.broker import broker_errors
from workers.context import Context, open_context
from workers.reconcile import reconcile as run_reconcile
from workers.settings import Settings


def _cluster_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--broker-url, --storage-url and --private-storage-url: a flag wins over its environment
    variable, which wins over the default (workers.settings.Settings.from_env decides, alone)."""
    command = click.option(
        "--private-storage-url", default=None, metavar="URL",
        help="The private area (raws, job records): s3://bucket/prefix or file:///path"
             " [env STORYMEDIA_PRIVATE_STORAGE_URL; default: the storage URL's bucket + '-private',"
             " or its folder + '-private']")(command)
    command = click.option(
        "--storage-url", default=None, metavar="URL",
        help="The public area (renditions, manifests): s3://bucket/prefix or file:///path"
             " [env STORYMEDIA_STORAGE_URL]")(command)
    return click.option(
        "--broker-url", default=None, metavar="URL",
        help="Redis broker, redis://host:6379/0 [env STORYMEDIA_BROKER_URL]")(command)


def _settings(urls: dict[str, str | None]) -> Settings:
    """The cluster settings for the flags given (``urls``: broker_url, storage_url,
    private_storage_url), the environment for the rest."""
    return Settings.from_env(broker_url=urls.get("broker_url"), storage_url=urls.get("storage_url"),
                             private_storage_url=urls.get("private_storage_url"))


@contextlib.contextmanager
def _connected(urls: dict[str, str | None]) -> Iterator[Context]:
    """The cluster for exactly the broker and stores given (its Celery app built from the same
    settings); broker failures inside the block become one ``BrokerError``."""
    settings = _settings(urls)
    settings.check_broker()
    ctx = open_context(settings)
    with broker_errors(settings.broker_url):
        yield ctx


def _become_celery(settings: Settings, argv: list[str], **celery_env: str) -> NoReturn:
    """Replace this process with Celery's program ``argv``: the settings' broker and stores, and
    ``celery_env`` (Celery's own switches), go into the new process's environment only."""
    sys.stdout.flush()
    os.execve(sys.executable, argv, {**os.environ, **settings.as_env(), **celery_env})


@click.command()
@click.argument("story_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--wait", is_flag=True, help="Follow every asset to the end; exit code as for `run`.")
@click.option("--breaking", is_flag=True, help="Breaking news: use the fast-lane queues.")
@click.option("--timeout", type=float, default=None, help="With --wait: give up after this many seconds.")
@click.option("--presets", "presets_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Preset folder (default: $STORYMEDIA_PRESETS or the bundled presets/).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@_cluster_options
def submit(story_file: Path, wait: bool, breaking: bool, timeout: float | None, presets_dir: Path | None,
           quiet: bool, **urls: str | None) -> None:
    """Send STORY_FILE to the cluster: upload its raws, record the job, enqueue it.

    Prints the job id once the broker took the job (exit 3 when it cannot be reached). With --wait,
    follows each asset to the end and exits 0 when every asset is done, 2 when some failed.
    Submitting the same story again while it runs attaches to that job.
    """
    def body() -> int:
        story, presets = prepare(story_file, presets_dir)
        with _connected(urls) as ctx:
            return _submit(ctx, story_file, story, presets, breaking, wait, timeout, quiet)

    sys.exit(guard(body))


def _submit(ctx: Context, story_file: Path, story: Story, presets: dict[str, Preset], breaking: bool,
            wait: bool, timeout: float | None, quiet: bool) -> int:
    total = sum((story_file.resolve().parent / a.file).stat().st_size for a in story.assets)
    bar = Progress(TextColumn("uploading raws"), BarColumn(bar_width=28),
                   TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                   console=err, disable=quiet, transient=True)
    with bar:
        task = bar.add_task("raws", total=total)
        sent = client.submit(ctx, story_file, story, presets, breaking=breaking,
                             on_uploaded=lambda _name, size: bar.advance(task, size))
    note = " (the same submission was already running: following it)" if sent.attached else ""
    out.print(f"Job {shown(sent.job)} for story {shown(sent.story)}{note}", highlight=False)
    if not wait:
        out.print(f"Follow it with: storymedia status {shown(sent.job)}", highlight=False)
        return EXIT_OK
    return _follow(ctx, sent.story, sent.job, timeout, quiet)




def _follow(ctx: Context, story_id: str, job_id: str, timeout: float | None, quiet: bool) -> int:
    progress = Progress(
        TextColumn("{task.description:<22}"), BarColumn(bar_width=28), MofNCompleteColumn(),
        TextColumn("{task.fields[stage]}"), TimeElapsedColumn(),
        console=out, disable=quiet, transient=False)
    bars: dict[int, Any] = {}

    def update(state: client.JobStatus) -> None:
        for row in state.assets:
            order = row["order"]
            if order not in bars:
                bars[order] = progress.add_task(shown(Path(row["file"]).name), total=None, stage="")
            stage = row["state"]
            style = STAGE_STYLE.get(stage, "white")
            if stage in ("done", "failed"):
                progress.update(bars[order], total=1, completed=1, stage=f"[{style}]{stage}[/]")
            elif stage == "rendering" and row["total"]:
                progress.update(bars[order], total=row["total"], completed=row["done"],
                                stage=f"[{style}]{stage}[/]")
            else:
                progress.update(bars[order], stage=f"[{style}]{stage}[/]")

    with progress:
        final = client.follow(ctx, story_id, job_id, update, timeout=timeout)
    return _print_status(final)


def _print_status(state: client.JobStatus) -> int:
    table = Table(title=f"Story {shown(state.story)}, job {shown(state.job)}", title_justify="left")
    for column in ("#", "file", "state", "renditions", "attempts", "worker", "reason"):
        table.add_column(column, overflow="fold")
    for row in state.assets:
        colour = {"done": "green", "failed": "red"}.get(row["state"], "yellow")
        table.add_row(str(row["order"]), shown(row["file"]), f"[{colour}]{shown(row['state'])}[/]",
                      str(row.get("renditions", "")), str(row.get("attempts") or ""),
                      shown(row.get("worker", "")), shown(row.get("reason", "")))
    out.print(table)
    for row in state.assets:
        diagnostics = row.get("diagnostics")
        if diagnostics:
            out.print(f"[bold]#{row['order']} {shown(row['file'])}[/]: the failing command", highlight=False)
            out.print(redact(" ".join(diagnostics["command"])), highlight=False, markup=False,
                      soft_wrap=True)
            out.print("log tail:", highlight=False)
            out.print(redact(diagnostics["log_tail"].rstrip()) or "(empty)", highlight=False,
                      markup=False)
    colour = {"complete": "green", "partial": "yellow", "failed": "red"}.get(state.state, "cyan")
    out.print(f"Status: [bold {colour}]{shown(state.state)}[/]"
              + (f" ({shown(state.reason)})" if state.reason else ""), highlight=False)
    if state.done:
        out.print(f"Manifest: stories/{shown(state.story)}/manifest.json"
                  f" (v{shown(state.done['manifest_version'])})", highlight=False)
        return EXIT_OK if state.state == "complete" else EXIT_PARTIAL
    return EXIT_OK


@click.command()
@click.argument("job_or_story")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@_cluster_options
def status(job_or_story: str, as_json: bool, **urls: str | None) -> None:
    """Show a job (or a story's latest job): each asset's state, failures with their reason, and
    for a failed render the ffmpeg command and the tail of its log."""
    def body() -> int:
        with _connected(urls) as ctx:
            story_id, job_id = client.find_job(ctx, job_or_story)
            state = client.status(ctx, story_id, job_id)
        if as_json:
            out.print_json(redact(json.dumps(dataclasses.asdict(state), ensure_ascii=False)))
            return EXIT_OK
        return _print_status(state)

    sys.exit(guard(body))


@click.command("manifest")
@click.argument("story")
@click.option("--presign", is_flag=True, help="Replace every URL with a presigned GET URL (S3 storage).")
@click.option("--expires", type=click.IntRange(60, 7 * 86400), default=None,
              help="Presigned URL lifetime in seconds (default: $STORYMEDIA_PRESIGN_EXPIRY or 3600).")
@_cluster_options
def manifest_command(story: str, presign: bool, expires: int | None, **urls: str | None) -> None:
    """Print STORY's current manifest (JSON) to standard output."""
    def body() -> int:
        with _connected(urls) as ctx:
            document = client.current_manifest(ctx, story)
            if presign:
                document = client.presigned(ctx, document, expires)
        click.echo(json.dumps(document, ensure_ascii=False, indent=2))
        return EXIT_OK

    sys.exit(guard(body))


@click.command()
@click.argument("story")
@click.option("--preset", required=True, help="Preset name (web) or label (web@3).")
@click.option("--dest", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder to download into; files keep their key's path.")
@_cluster_options
def pull(story: str, preset: str, dest: Path, **urls: str | None) -> None:
    """Download STORY's renditions of one preset, each checked against its SHA-256."""
    def body() -> int:
        with _connected(urls) as ctx:
            saved = client.pull(ctx, story, preset, dest)
        size = sum(p.stat().st_size for p in saved)
        out.print(f"{len(saved)} files, {size / 1e6:.1f} MB, checked, in {shown(dest)}", highlight=False)
        return EXIT_OK

    sys.exit(guard(body))


@click.command()
@click.option("--queues", "-Q", default="probe,image,video,io,manifest", show_default=True,
              help="Comma-separated queues to serve (breaking-<stage> for the fast lane).")
@click.option("--concurrency", "-c", type=click.IntRange(1, 256), default=None,
              help="Worker processes (default: one per CPU core).")
@click.option("--name", "-n", default=None, help="Worker name (default: <queues>@<host>).")
@click.option("--loglevel", "-l", default="INFO", show_default=True)
@_cluster_options
def worker(queues: str, concurrency: int | None, name: str | None, loglevel: str,
           **urls: str | None) -> None:
    """Start a Celery worker on QUEUES (this process becomes the worker).

    SIGTERM requeues running tasks after STORYMEDIA_SOFT_SHUTDOWN_TIMEOUT seconds (soft shutdown),
    so a deploy or a scale-down loses nothing.
    """
    def body() -> int:
        wanted = [q.strip() for q in queues.split(",") if q.strip()]
        unknown = [q for q in wanted if q not in QUEUES]
        if unknown or not wanted:
            raise ConfigError(f"--queues: unknown queue(s) {', '.join(unknown) or '(none)'}; the queues"
                              f" are {', '.join(QUEUES)}")
        settings = _settings(urls)
        settings.check()
        # No mingle or gossip: we never revoke tasks, so a worker has nothing to learn from its
        # neighbours at start-up (mingle costs a second), and gossip is all-to-all chatter on
        # Redis. Events stay on for Flower and `celery events`.
        argv = [sys.executable, "-m", "celery", "--app", "workers.app", "worker", "--pool", "prefork",
                "--queues", ",".join(wanted), "--loglevel", loglevel, "--events",
                "--without-mingle", "--without-gossip",
                "--hostname", name or f"{'+'.join(wanted)}@%h"]
        if concurrency:
            argv += ["--concurrency", str(concurrency)]
        _become_celery(settings, argv, REMAP_SIGTERM="SIGQUIT")   # SIGTERM -> soft shutdown, requeue

    sys.exit(guard(body))


@click.command()
@click.option("--loglevel", "-l", default="INFO", show_default=True)
@_cluster_options
def beat(loglevel: str, **urls: str | None) -> None:
    """Start the scheduler that runs `reconcile` every STORYMEDIA_RECONCILE_EVERY seconds."""
    def body() -> int:
        settings = _settings(urls)
        settings.check_broker()
        settings.scratch.mkdir(parents=True, exist_ok=True)
        _become_celery(settings, [sys.executable, "-m", "celery", "--app", "workers.app", "beat",
                                  "--loglevel", loglevel,
                                  "--schedule", str(settings.scratch / "celerybeat-schedule")])

    sys.exit(guard(body))


@click.command()
@click.option("--stale-after", type=float, default=None,
              help="Re-enqueue unfinished jobs with no progress for this many seconds"
                   " (default: $STORYMEDIA_STALE_AFTER or twice the hard time limit).")
@click.option("--dry-run", is_flag=True, help="Say what would be re-enqueued; change nothing.")
@_cluster_options
def reconcile(stale_after: float | None, dry_run: bool, **urls: str | None) -> None:
    """Find jobs without a final manifest and re-enqueue what is missing.

    A job is re-enqueued when the broker has no live state for it (Redis lost its data), when it
    made no progress for --stale-after seconds, or when every asset is recorded but its manifest
    has not come for a minute. Safe to run at any time: finished work is skipped.
    """
    def body() -> int:
        with _connected(urls) as ctx:
            found = run_reconcile(ctx, stale_after, dry_run)
        verb = "would re-enqueue" if dry_run else "re-enqueued"
        for story_id, job_id, why in found.requeued:
            out.print(f"{verb} {shown(story_id)} job {shown(job_id)}: {shown(why)}", highlight=False)
        for story_id, job_id, state in found.waiting:
            out.print(f"running  {shown(story_id)} job {shown(job_id)}: {shown(state)}", highlight=False)
        out.print(f"{len(found.requeued)} job(s) {verb}, {len(found.waiting)} still running,"
                  f" {found.aborted_uploads} incomplete upload(s) aborted", highlight=False)
        return EXIT_OK

    sys.exit(guard(body))
