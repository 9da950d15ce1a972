"""The service commands: ``serve`` (the HTTP API) and ``token`` (who may use it)."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from storymedia.cli import EXIT_OK, guard, out, shown

DATA_HELP = ("The service's folder: the embedded stores (DATA/public, DATA/private), the tokens"
             " file and the upload spool (default: $STORYMEDIA_DATA or ./storymedia-data).")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--out", "data", type=click.Path(path_type=Path, file_okay=False), default=None, help=DATA_HELP)
@click.option("--presets", "presets_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Preset folder (default: $STORYMEDIA_PRESETS or the bundled presets/).")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Embedded: processes to render with (default: one per CPU core).")
def serve(host: str, port: int, data: Path | None, presets_dir: Path | None, workers: int | None) -> None:
    """Run the HTTP service (API under /v1, OpenAPI at /openapi.json).

    Without STORYMEDIA_BROKER_URL jobs run in this process's pool into DATA (nothing else to
    start); with it, jobs go to the cluster's Celery workers and the stores are the cluster's S3.
    """
    sys.exit(guard(lambda: _serve(host, port, data, presets_dir, workers)))


def _serve(host: str, port: int, data: Path | None, presets_dir: Path | None, workers: int | None) -> int:
    import uvicorn

    from api.app import create_app
    from api.config import ServiceConfig
    from api.logs import configure_logging

    config = ServiceConfig.from_env(data=data, presets_dir=presets_dir, workers=workers)
    configure_logging(config.env.get("STORYMEDIA_LOG_FORMAT", ""))
    app = create_app(config)
    out.print(f"storymedia service ({config.mode}) on http://{shown(host)}:{port}"
              f"  data: {shown(config.data)}", highlight=False)
    uvicorn.run(app, host=host, port=port, log_config=None, proxy_headers=False,
                timeout_graceful_shutdown=10)
    return EXIT_OK


_DURATION = re.compile(r"([1-9][0-9]{0,5})([dhm])")


def _duration(text: str) -> timedelta | None:
    """``90d``, ``12h``, ``30m`` or ``never`` (None)."""
    if text.strip().lower() == "never":
        return None
    found = _DURATION.fullmatch(text.strip().lower())
    if found is None:
        from pipeline.errors import ConfigError

        raise ConfigError(f"--expires: {text!r} is not a duration such as 90d, 12h or 30m, nor never")
    number, unit = int(found[1]), found[2]
    return timedelta(days=number) if unit == "d" else timedelta(hours=number) if unit == "h" \
        else timedelta(minutes=number)


def _when(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M UTC")


@click.group()
def token() -> None:
    """Tokens of the HTTP service: each has a role and a desk; only its hash is kept."""


def _store(data: Path | None):  # type: ignore[no-untyped-def]
    from api.auth import TokenStore
    from api.config import ServiceConfig

    return TokenStore(ServiceConfig.from_env(data=data).tokens_file)


@token.command("create")
@click.option("--role", type=click.Choice(["producer", "editor", "operator"]), required=True)
@click.option("--desk", required=True, help="The desk (a slug such as thoi-su).")
@click.option("--note", default="", help="Who holds it (shown by `token list`).")
@click.option("--expires", default="never", show_default=True, metavar="DURATION",
              help="How long it works: days, hours or minutes (90d, 12h, 30m), or never.")
@click.option("--out", "data", type=click.Path(path_type=Path, file_okay=False), default=None, help=DATA_HELP)
def create(role: str, desk: str, note: str, expires: str, data: Path | None) -> None:
    """Make a token and print it once (its last line); keep it secret."""

    def body() -> int:
        store = _store(data)
        secret, who = store.create(role, desk, note, expires_in=_duration(expires))
        until = f", until {_when(who.expires)}" if who.expires else ""
        out.print(f"token {shown(who.id)}: {who.role} of desk {shown(who.desk)}{until} (saved in"
                  f" {shown(store.path)}; it is shown only now)", highlight=False)
        print(secret)
        return EXIT_OK

    sys.exit(guard(body))


@token.command("list")
@click.option("--out", "data", type=click.Path(path_type=Path, file_okay=False), default=None, help=DATA_HELP)
def list_tokens(data: Path | None) -> None:
    """The tokens (id, role, desk, expiry, note; never the token)."""

    def body() -> int:
        now = datetime.now(UTC)
        for who in _store(data).list():
            until = ("never expires" if not who.expires
                     else f"expired {_when(who.expires)}" if datetime.fromisoformat(who.expires) <= now
                     else f"until {_when(who.expires)}")
            out.print(f"{shown(who.id)}  {who.role:<9} {shown(who.desk):<12} {until:<30} {shown(who.note)}",
                      highlight=False)
        return EXIT_OK

    sys.exit(guard(body))


@token.command("revoke")
@click.argument("token_id")
@click.option("--out", "data", type=click.Path(path_type=Path, file_okay=False), default=None, help=DATA_HELP)
def revoke(token_id: str, data: Path | None) -> None:
    """Revoke the token with this id (from `token list`)."""

    def body() -> int:
        if not _store(data).revoke(token_id):
            from pipeline.errors import ConfigError

            raise ConfigError(f"no token with id {token_id!r}")
        out.print(f"token {shown(token_id)} revoked", highlight=False)
        return EXIT_OK

    sys.exit(guard(body))
