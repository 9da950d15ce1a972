"""The service's settings: flags of ``storymedia serve`` over the environment over defaults.

Without ``STORYMEDIA_BROKER_URL`` the service is the **embedded** default: jobs run in its own
process pool, the stores are ``DATA/public`` and ``DATA/private``, nothing else to start. With it,
the service is a front door of the **cluster**: jobs go to the Celery workers, the stores are the
cluster's (``workers.settings.Settings`` reads the same variables the workers do).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import ConfigError

ENV = {
    "STORYMEDIA_DATA": "the service's folder: embedded stores (public/, private/), the tokens file,"
                       " upload spool (default ./storymedia-data; --out)",
    "STORYMEDIA_TOKENS_FILE": "the tokens file (hashes only; default DATA/tokens.json)",
    "STORYMEDIA_SERVICE_SECRET": "signs the pages' session cookies and the embedded mode's file URLs"
                                 " (default: made once, kept in DATA/service-secret)",
    "STORYMEDIA_WEBHOOK_HOSTS": "host names webhooks may be sent to, comma-separated (required for"
                                " any webhook; '*.example.vn' allows subdomains)",
    "STORYMEDIA_WEBHOOK_ALLOW_PRIVATE": "1 to allow webhook hosts that resolve to private addresses"
                                        " (a CMS on the station's LAN); loopback and link-local never",
    "STORYMEDIA_UPLOAD_MAX_BYTES": "largest upload accepted (default: the presets' limits.toml)",
    "STORYMEDIA_UPLOAD_EXPIRY": "seconds an unfinished upload is kept (default 86400)",
    "STORYMEDIA_LOG_FORMAT": "'json' for one JSON object per log line",
    "STORYMEDIA_VENDOR_DIR": "the pages' JavaScript libraries: a node_modules folder made by"
                             " `npm ci` (default: the one beside the installed package)",
    "STORYMEDIA_FLOWER_URL": "Flower's address (http or https), linked from the operator's console"
                             " for task-level detail (cluster mode; unset: no link)",
}

DEFAULT_VENDOR_DIR = Path(__file__).resolve().parent.parent / "node_modules"
"""Where scripts/setup.sh runs ``npm ci`` (the repository, for an editable install)."""


@dataclass(frozen=True)
class ServiceConfig:
    data: Path
    tokens_file: Path
    secret: bytes
    broker_url: str | None = None
    """Set: the cluster; unset: the embedded default."""
    presets_dir: Path | None = None
    public_url: str | None = None
    webhook_hosts: tuple[str, ...] = ()
    webhook_allow_private: bool = False
    upload_max_bytes: int | None = None
    upload_expiry: int = 24 * 3600
    workers: int | None = None
    """Embedded: processes to render with (default: one per core)."""
    vendor_dir: Path = DEFAULT_VENDOR_DIR
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def mode(self) -> str:
        return "cluster" if self.broker_url else "embedded"

    @property
    def public_dir(self) -> Path:
        return self.data / "public"

    @property
    def private_dir(self) -> Path:
        return self.data / "private"

    @property
    def spool(self) -> Path:
        return self.data / "spool"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, data: Path | None = None,
                 presets_dir: Path | None = None, public_url: str | None = None,
                 workers: int | None = None) -> ServiceConfig:
        env = dict(os.environ if env is None else env)
        folder = (data or Path(env.get("STORYMEDIA_DATA") or "storymedia-data")).resolve()
        tokens = Path(env.get("STORYMEDIA_TOKENS_FILE") or folder / "tokens.json")
        presets = presets_dir or (Path(env["STORYMEDIA_PRESETS"]) if env.get("STORYMEDIA_PRESETS") else None)
        return cls(
            data=folder, tokens_file=tokens, secret=_secret(env, folder),
            broker_url=env.get("STORYMEDIA_BROKER_URL") or None,
            presets_dir=presets,
            public_url=public_url or env.get("STORYMEDIA_PUBLIC_URL") or None,
            webhook_hosts=tuple(h.strip().lower() for h in env.get("STORYMEDIA_WEBHOOK_HOSTS", "").split(",")
                                if h.strip()),
            webhook_allow_private=env.get("STORYMEDIA_WEBHOOK_ALLOW_PRIVATE", "") in ("1", "true", "yes"),
            upload_max_bytes=_int(env, "STORYMEDIA_UPLOAD_MAX_BYTES"),
            upload_expiry=_int(env, "STORYMEDIA_UPLOAD_EXPIRY") or 24 * 3600,
            workers=workers,
            vendor_dir=Path(env.get("STORYMEDIA_VENDOR_DIR") or DEFAULT_VENDOR_DIR),
            env=env)


def _int(env: Mapping[str, str], name: str) -> int | None:
    text = env.get(name, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError as exc:
        raise ConfigError(f"{name}={text!r} is not a whole number") from exc
    if value <= 0:
        raise ConfigError(f"{name} must be above 0")
    return value


def _secret(env: Mapping[str, str], folder: Path) -> bytes:
    given = env.get("STORYMEDIA_SERVICE_SECRET", "")
    if given:
        if len(given) < 16:
            raise ConfigError("STORYMEDIA_SERVICE_SECRET must be at least 16 characters")
        return given.encode("utf-8")
    path = folder / "service-secret"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))
    return path.read_bytes().strip()
