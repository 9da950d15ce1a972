"""The ``storymedia`` command line: the command group, and what every command shares.

The commands live by area: ``storymedia.local`` (run, presets: no cluster needed, and they never
import it) and ``storymedia.cluster`` (submit, status, manifest, pull, worker, beat, reconcile).
A command's module is imported when the command is used, so ``storymedia run`` loads no Celery.

Exit codes: 0 every asset done; 2 some assets failed (manifest status ``partial`` or ``failed``);
1 the story or a preset is invalid; 3 storage, broker or internal error. No traceback reaches the
user: unexpected errors print one line and leave the details in a log file.

Everything shown goes through two filters: user text (titles, file names, reasons, ids, paths) is
escaped for rich's markup (a title may well contain ``[/]``), and every line is redacted (no URL's
password reaches the screen, a log line or the error log file).
"""

from __future__ import annotations

import importlib
import tempfile
import traceback
from collections.abc import Callable

import click
from rich.console import Console
from rich.markup import escape

from pipeline import __version__
from pipeline.errors import InvalidPreset, InvalidStory, PipelineError
from pipeline.redaction import redact, redact_logging

EXIT_OK, EXIT_INVALID, EXIT_PARTIAL, EXIT_ERROR = 0, 1, 2, 3

out = Console()
err = Console(stderr=True)

STAGE_STYLE = {"pending": "dim", "probing": "cyan", "rendering": "yellow", "storing": "blue",
               "done": "green", "failed": "red", "canceled": "magenta"}
"""The colour of an asset's state in progress bars and tables."""
STATUS_STYLE = {"complete": "green", "partial": "yellow", "failed": "red", "canceled": "magenta"}
"""The colour of a job's final state."""

COMMANDS = {
    "run": "storymedia.local:run",
    "presets": "storymedia.local:presets_command",
    "submit": "storymedia.cluster:submit",
    "status": "storymedia.cluster:status",
    "manifest": "storymedia.cluster:manifest_command",
    "pull": "storymedia.cluster:pull",
    "worker": "storymedia.cluster:worker",
    "beat": "storymedia.cluster:beat",
    "reconcile": "storymedia.cluster:reconcile",
    "serve": "storymedia.service:serve",
    "token": "storymedia.service:token",
    "cancel": "storymedia.operations:cancel",
    "rerun": "storymedia.operations:rerun",
}
"""Every command, by name: ``module:attribute`` of its click command."""


def shown(text: object) -> str:
    """User text as rich markup that shows it verbatim, credentials redacted."""
    return escape(redact(str(text)))


def print_error(label: str, text: str) -> None:
    """One error line on standard error: ``label: text``, the text shown verbatim and redacted."""
    err.print(f"[bold red]{label}:[/] {shown(text)}", markup=True, highlight=False, soft_wrap=True)


def guard(action: Callable[[], int]) -> int:
    """Run a command body, turning every error into one line and an exit code."""
    try:
        return action()
    except (InvalidStory, InvalidPreset) as exc:
        print_error("error", exc.reason)
        return EXIT_INVALID
    except PipelineError as exc:
        print_error("error", exc.reason)
        return EXIT_ERROR
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except Exception as exc:  # the last line of defence: no traceback for users
        with tempfile.NamedTemporaryFile("w", prefix="storymedia-error-", suffix=".log",
                                         delete=False) as log:
            log.write(redact(traceback.format_exc()))
        print_error("internal error", f"{type(exc).__name__}: {exc} (details in {log.name})")
        return EXIT_ERROR


class _CommandsByArea(click.Group):
    """A group whose commands are imported from their area's module when first asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, _, attribute = COMMANDS[cmd_name].partition(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command), COMMANDS[cmd_name]
        return command


@click.group(cls=_CommandsByArea,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="storymedia")
def cli() -> None:
    """storymedia: a story's photos, clips and audio made ready for web, broadcast, social and radio.

    \b
    Producers describe a story in a TOML file (title, byline, date, source and the assets with
    captions, credits, lower thirds and subtitles); storymedia turns every asset into the
    renditions its presets define, embeds caption, byline, credit and copyright, adds the station
    logo, stores everything under content-addressed keys and writes one manifest per story, last.

    \b
    Quick start:
      storymedia run examples/thanh-hoa/story.toml --out out
      storymedia presets
    """


def main() -> None:
    # Library warnings reach stderr as before (logging's last resort), redacted; so do the
    # handlers of anyone who configured logging first.
    redact_logging()
    cli(prog_name="storymedia")   # the same usage line for `python -m storymedia`
