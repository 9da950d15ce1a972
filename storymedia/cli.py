"""The ``storymedia`` command line.

Exit codes: 0 every asset done; 2 some assets failed (manifest status ``partial`` or ``failed``);
1 the story or a preset is invalid; 3 storage, broker or internal error. No traceback reaches the
user: unexpected errors print one line and leave the details in a log file.

Everything shown goes through two filters: user text (titles, file names, reasons, ids, paths) is
escaped for rich's markup (a title may well contain ``[/]``), and every line is redacted (no URL's
password reaches the screen, a log line or the error log file).
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
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipeline import __version__
from pipeline.errors import InvalidPreset, InvalidStory, PipelineError
from pipeline.model.presets import default_presets_dir, load_presets
from pipeline.redaction import redact, redact_logging

EXIT_OK, EXIT_INVALID, EXIT_PARTIAL, EXIT_ERROR = 0, 1, 2, 3

out = Console()
err = Console(stderr=True)

_STAGE_STYLE = {"probing": "cyan", "rendering": "yellow", "done": "green", "failed": "red"}


def shown(text: object) -> str:
    """User text as rich markup that shows it verbatim, credentials redacted."""
    return escape(redact(str(text)))


def _error(label: str, text: str) -> None:
    err.print(f"[bold red]{label}:[/] {shown(text)}", markup=True, highlight=False, soft_wrap=True)


def _guard(action: Callable[[], int]) -> int:
    """Run a command body, turning every error into one line and an exit code."""
    try:
        return action()
    except (InvalidStory, InvalidPreset) as exc:
        _error("error", exc.reason)
        return EXIT_INVALID
    except PipelineError as exc:
        _error("error", exc.reason)
        return EXIT_ERROR
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except Exception as exc:  # the last line of defence: no traceback for users
        with tempfile.NamedTemporaryFile("w", prefix="storymedia-error-", suffix=".log",
                                         delete=False) as log:
            log.write(redact(traceback.format_exc()))
        _error("internal error", f"{type(exc).__name__}: {exc} (details in {log.name})")
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
    sys.exit(_guard(lambda: _run(story_file, out_dir, workers, presets_dir, public_url, quiet)))


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

    out.print(f"[bold]{shown(story.story.title)}[/] ({shown(story.story.id)}): {len(story.assets)}"
              f" assets, presets {shown(', '.join(story.story.presets))}", highlight=False)
    with progress:
        report = run_story(story_file, out_dir, workers=workers, public_url=public_url,
                           on_event=on_event, story=story, presets=presets, presets_dir=presets_dir)
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


@cli.command("presets")
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
            renditions = ", ".join(
                f"{s.name} {s.format}" + (f" {s.width}x{s.height}" if s.height else "")
                for s in preset.images)
            table.add_row(shown(preset.label), shown(preset.description), shown(renditions))
        out.print(table)
        return EXIT_OK

    sys.exit(_guard(body))


# --- the cluster -----------------------------------------------------------------------------------

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


def _settings(urls: dict[str, str | None]) -> Any:
    """The cluster settings for the flags given (``urls``: broker_url, storage_url,
    private_storage_url), the environment for the rest."""
    from workers.settings import Settings

    return Settings.from_env(broker_url=urls.get("broker_url"), storage_url=urls.get("storage_url"),
                             private_storage_url=urls.get("private_storage_url"))


def _cluster(urls: dict[str, str | None]) -> Any:
    """The cluster context for exactly the broker and stores given: the Celery app is configured
    from the same settings before any message can be sent."""
    from workers.app import configure_app
    from workers.context import open_context

    settings = _settings(urls)
    settings.check_broker()
    configure_app(settings)
    return open_context(settings)


def _guard_cluster(action: Callable[[], int]) -> int:
    """Like _guard, with broker trouble as one clear line too (exit 3)."""
    import redis
    from kombu.exceptions import OperationalError

    def body() -> int:
        try:
            return action()
        except (redis.RedisError, OperationalError, ConnectionError) as exc:
            from workers.app import current_settings

            url = current_settings().broker_url
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            cause: BaseException | None = exc
            while cause is not None and not isinstance(cause, redis.ResponseError):
                cause = cause.__cause__ or cause.__context__   # kombu wraps what Redis said
            if cause is not None:
                raise PipelineError(f"the broker at {url} refused the request: {detail}",
                                    code="broker-refused") from exc
            raise PipelineError(f"cannot reach the broker at {url}: {detail}",
                                code="broker-unreachable") from exc

    return _guard(body)


@cli.command()
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
        from pipeline.run.embedded import prepare
        from workers import client

        story, presets = prepare(story_file, presets_dir)
        ctx = _cluster(urls)
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

    sys.exit(_guard_cluster(body))


def _follow(ctx: Any, story_id: str, job_id: str, timeout: float | None, quiet: bool) -> int:
    from workers import client

    progress = Progress(
        TextColumn("{task.description:<22}"), BarColumn(bar_width=28), MofNCompleteColumn(),
        TextColumn("{task.fields[stage]}"), TimeElapsedColumn(),
        console=out, disable=quiet, transient=False)
    bars: dict[int, Any] = {}

    def update(state: Any) -> None:
        for row in state.assets:
            order = row["order"]
            if order not in bars:
                bars[order] = progress.add_task(shown(Path(row["file"]).name), total=None, stage="")
            stage = row["state"]
            style = _STAGE_STYLE.get(stage, "white")
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


def _print_status(state: Any) -> int:
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


@cli.command()
@click.argument("job_or_story")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@_cluster_options
def status(job_or_story: str, as_json: bool, **urls: str | None) -> None:
    """Show a job (or a story's latest job): each asset's state, failures with their reason, and
    for a failed render the ffmpeg command and the tail of its log."""
    def body() -> int:
        import dataclasses
        import json

        from workers import client

        ctx = _cluster(urls)
        story_id, job_id = client.find_job(ctx, job_or_story)
        state = client.status(ctx, story_id, job_id)
        if as_json:
            out.print_json(redact(json.dumps(dataclasses.asdict(state), ensure_ascii=False)))
            return EXIT_OK
        return _print_status(state)

    sys.exit(_guard_cluster(body))


@cli.command("manifest")
@click.argument("story")
@click.option("--presign", is_flag=True, help="Replace every URL with a presigned GET URL (S3 storage).")
@click.option("--expires", type=click.IntRange(60, 7 * 86400), default=None,
              help="Presigned URL lifetime in seconds (default: $STORYMEDIA_PRESIGN_EXPIRY or 3600).")
@_cluster_options
def manifest_command(story: str, presign: bool, expires: int | None, **urls: str | None) -> None:
    """Print STORY's current manifest (JSON) to standard output."""
    def body() -> int:
        import json

        from workers import client

        ctx = _cluster(urls)
        document = client.current_manifest(ctx, story)
        if presign:
            document = client.presigned(ctx, document, expires)
        click.echo(json.dumps(document, ensure_ascii=False, indent=2))
        return EXIT_OK

    sys.exit(_guard_cluster(body))


@cli.command()
@click.argument("story")
@click.option("--preset", required=True, help="Preset name (web) or label (web@3).")
@click.option("--dest", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder to download into; files keep their key's path.")
@_cluster_options
def pull(story: str, preset: str, dest: Path, **urls: str | None) -> None:
    """Download STORY's renditions of one preset, each checked against its SHA-256."""
    def body() -> int:
        from workers import client

        ctx = _cluster(urls)
        saved = client.pull(ctx, story, preset, dest)
        size = sum(p.stat().st_size for p in saved)
        out.print(f"{len(saved)} files, {size / 1e6:.1f} MB, checked, in {shown(dest)}", highlight=False)
        return EXIT_OK

    sys.exit(_guard_cluster(body))


@cli.command()
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
        import os

        from workers.app import QUEUES

        wanted = [q.strip() for q in queues.split(",") if q.strip()]
        unknown = [q for q in wanted if q not in QUEUES]
        if unknown or not wanted:
            raise click.BadParameter(f"unknown queue(s) {', '.join(unknown) or '(none)'}; the queues"
                                     f" are {', '.join(QUEUES)}", param_hint="--queues")
        settings = _settings(urls)
        settings.check()
        os.environ.update(settings.as_env())   # the exec'd Celery reads the environment alone
        os.environ["REMAP_SIGTERM"] = "SIGQUIT"   # SIGTERM -> soft shutdown, then requeue
        # No mingle or gossip: we never revoke tasks, so a worker has nothing to learn from its
        # neighbours at start-up (mingle costs a second), and gossip is all-to-all chatter on
        # Redis. Events stay on for Flower and `celery events`.
        argv = [sys.executable, "-m", "celery", "--app", "workers.app", "worker", "--pool", "prefork",
                "--queues", ",".join(wanted), "--loglevel", loglevel, "--events",
                "--without-mingle", "--without-gossip",
                "--hostname", name or f"{'+'.join(wanted)}@%h"]
        if concurrency:
            argv += ["--concurrency", str(concurrency)]
        sys.stdout.flush()
        os.execv(sys.executable, argv)

    sys.exit(_guard(body))


@cli.command()
@click.option("--loglevel", "-l", default="INFO", show_default=True)
@_cluster_options
def beat(loglevel: str, **urls: str | None) -> None:
    """Start the scheduler that runs `reconcile` every STORYMEDIA_RECONCILE_EVERY seconds."""
    def body() -> int:
        import os

        settings = _settings(urls)
        settings.check_broker()
        os.environ.update(settings.as_env())   # the exec'd Celery reads the environment alone
        settings.scratch.mkdir(parents=True, exist_ok=True)
        os.execv(sys.executable, [sys.executable, "-m", "celery", "--app", "workers.app", "beat",
                                  "--loglevel", loglevel,
                                  "--schedule", str(settings.scratch / "celerybeat-schedule")])

    sys.exit(_guard(body))


@cli.command()
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
        from workers.reconcile import reconcile as run_reconcile

        ctx = _cluster(urls)
        found = run_reconcile(ctx, stale_after, dry_run)
        verb = "would re-enqueue" if dry_run else "re-enqueued"
        for story_id, job_id, why in found.requeued:
            out.print(f"{verb} {shown(story_id)} job {shown(job_id)}: {shown(why)}", highlight=False)
        for story_id, job_id, state in found.waiting:
            out.print(f"running  {shown(story_id)} job {shown(job_id)}: {shown(state)}", highlight=False)
        out.print(f"{len(found.requeued)} job(s) {verb}, {len(found.waiting)} still running,"
                  f" {found.aborted_uploads} incomplete upload(s) aborted", highlight=False)
        return EXIT_OK

    sys.exit(_guard_cluster(body))


def main() -> None:
    # Library warnings reach stderr as before (logging's last resort), redacted; so do the
    # handlers of anyone who configured logging first.
    redact_logging()
    cli()
