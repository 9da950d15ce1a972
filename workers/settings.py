"""Cluster settings: explicit values (the CLI's flags) over the environment over the defaults.

Every variable the cluster reads is listed in ``ENV``; docker-compose.yml sets only these (a test
checks it). Durations are seconds. A process Celery starts (``celery --app workers.app``) reads
the environment alone; the command line builds its settings from its flags and the environment and
passes them to ``workers.context.open_context`` (which builds the Celery app with
``workers.app.create_app``).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from pipeline.errors import ConfigError
from pipeline.redaction import redact_url

DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"

ENV = {
    "STORYMEDIA_BROKER_URL": "Redis URL of the broker and live progress (redis://host:6379/0)",
    "STORYMEDIA_STORAGE_URL": "the public area: renditions and manifests, what a CDN may serve"
                              " (s3://bucket/prefix or file:///path)",
    "STORYMEDIA_PRIVATE_STORAGE_URL": "the private area: raw originals (with their GPS and serials) and"
                                      " job records, never published (default: the public URL's bucket"
                                      " + '-private', s3://bucket-private/prefix, or file:///path-private)",
    "STORYMEDIA_S3_ENDPOINT_URL": "S3 endpoint the workers use (SeaweedFS, Garage, AWS...)",
    "STORYMEDIA_S3_PUBLIC_ENDPOINT_URL": "S3 endpoint editors' browsers use: presigned URLs are made for it",
    "STORYMEDIA_S3_REGION": "S3 region (default: the AWS variables', else us-east-1)",
    "STORYMEDIA_S3_MULTIPART_MB": "files larger than this go up in parts of this size (default 16)",
    "STORYMEDIA_PUBLIC_URL": "base URL for manifest URLs (a CDN in front of the bucket); default: keys",
    "STORYMEDIA_PRESIGN_EXPIRY": "lifetime of presigned URLs (default 3600)",
    "STORYMEDIA_S3_CORS_ORIGINS": "origins of the service's pages, comma-separated (https://media.example.vn):"
                                  " the public bucket lets their video player read HLS via presigned URLs",
    "STORYMEDIA_PRESETS": "preset folder (default: the bundled presets/)",
    "STORYMEDIA_SCRATCH": "local scratch and raw cache folder of a worker (default: the temp folder)",
    "STORYMEDIA_TIME_LIMIT": "hard time limit of one task; the worker process is killed (default 11400)",
    "STORYMEDIA_SOFT_TIME_LIMIT": "soft limit: ffmpeg is stopped and the task retried or failed"
                                  " (default: hard limit - 600)",
    "STORYMEDIA_VISIBILITY_TIMEOUT": "a message not acked in this time is delivered again; must be"
                                     " above the hard time limit (default 14400)",
    "STORYMEDIA_MAX_ATTEMPTS": "runs of one asset before it is set aside as a poison file (default 3)",
    "STORYMEDIA_RESTORE_INTERVAL": "how often unacked messages of dead workers are looked for (default 30)",
    "STORYMEDIA_SOFT_SHUTDOWN_TIMEOUT": "on SIGTERM, seconds running tasks get before they are requeued"
                                        " (default 25)",
    "STORYMEDIA_MAX_MEMORY_MB": "a worker process is replaced after a task once it uses this much"
                                " (default 3000)",
    "STORYMEDIA_STALE_AFTER": "reconcile re-enqueues a job with no progress for this long"
                              " (default: 2 x hard time limit)",
    "STORYMEDIA_RECONCILE_EVERY": "beat: seconds between reconcile runs (default 600)",
    "STORYMEDIA_UPLOAD_EXPIRY": "seconds the service keeps an unfinished upload (default 86400): reconcile"
                                " leaves raw uploads younger than this",
    "STORYMEDIA_LOG_FORMAT": "'json' for one JSON object per log line (with story, job and asset ids)",
    "STORYMEDIA_WEBHOOK_HOSTS": "host names webhooks may be sent to, comma-separated ('*.example.vn'"
                                " allows subdomains); none: no webhook is sent",
    "STORYMEDIA_WEBHOOK_ALLOW_PRIVATE": "1 to allow webhook hosts that resolve to private addresses"
                                        " (a CMS on the station's LAN); loopback and link-local never",
}


def private_storage_default(storage_url: str) -> str:
    """The private area beside a public one: ``s3://bucket/prefix`` -> ``s3://bucket-private/prefix``,
    ``file:///path`` (or a plain path) -> ``file:///path-private``."""
    parsed = urlparse(storage_url)
    if parsed.scheme == "s3" and parsed.netloc:
        return parsed._replace(netloc=parsed.netloc + "-private").geturl()
    if parsed.scheme in ("", "file"):
        path = (parsed.path if parsed.scheme else storage_url).rstrip("/")
        if path:
            return f"file://{path}-private"
    raise ConfigError(f"cannot derive a private storage area from {storage_url!r}: set"
                      " STORYMEDIA_PRIVATE_STORAGE_URL (or --private-storage-url)")


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


def _origins(text: str) -> tuple[str, ...]:
    """``STORYMEDIA_S3_CORS_ORIGINS``: web origins (scheme, host, port; no path), comma-separated."""
    origins = tuple(part.strip().rstrip("/") for part in text.split(",") if part.strip())
    for origin in origins:
        if not _ORIGIN.fullmatch(origin):
            raise ConfigError(f"STORYMEDIA_S3_CORS_ORIGINS: {origin[:80]!r} is not an origin such as"
                              " https://media.example.vn or http://127.0.0.1:8000")
    return origins


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError as exc:
        raise ConfigError(f"{name}={text!r} is not a number of seconds") from exc
    if value <= 0:
        raise ConfigError(f"{name} must be above 0 (got {text})")
    return value


@dataclass(frozen=True)
class Settings:
    broker_url: str
    storage_url: str
    """The public area: renditions and manifests."""
    private_storage_url: str
    """The private area: raws and job records."""
    s3_endpoint_url: str | None
    s3_public_endpoint_url: str | None
    s3_region: str | None
    multipart_mb: int
    public_url: str | None
    presign_expiry: int
    s3_cors_origins: tuple[str, ...]
    presets_dir: Path | None
    scratch: Path
    time_limit: float
    soft_time_limit: float
    visibility_timeout: float
    max_attempts: int
    restore_interval: float
    soft_shutdown_timeout: float
    max_memory_mb: int
    stale_after: float
    reconcile_every: float
    upload_expiry: float = 24 * 3600
    """How long the service keeps an unfinished upload (``STORYMEDIA_UPLOAD_EXPIRY``): an upload
    that declared its SHA-256 is assembled at its raw's key, so raw multipart uploads this young
    may be a producer's paused upload."""
    log_format: str = ""
    """``json``: one JSON object per log line (workers.logs); anything else: Celery's own lines."""
    webhook_hosts: tuple[str, ...] = ()
    webhook_allow_private: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, broker_url: str | None = None,
                 storage_url: str | None = None, private_storage_url: str | None = None) -> Settings:
        """Settings from ``env`` (default ``os.environ``); the URLs given here (the CLI's flags)
        win over their variables. Nothing is written back to the environment."""
        env = os.environ if env is None else env

        def number(name: str, default: float) -> float:
            return _number(env, name, default)

        hard = number("STORYMEDIA_TIME_LIMIT", 3 * 3600 + 600)
        soft = number("STORYMEDIA_SOFT_TIME_LIMIT", max(hard - 600, hard * 0.8))
        presets = env.get("STORYMEDIA_PRESETS")
        storage = (storage_url or env.get("STORYMEDIA_STORAGE_URL")
                   or "file://" + str(Path("store").resolve()))
        private = (private_storage_url or env.get("STORYMEDIA_PRIVATE_STORAGE_URL")
                   or private_storage_default(storage))
        return cls(
            broker_url=broker_url or env.get("STORYMEDIA_BROKER_URL") or DEFAULT_BROKER_URL,
            storage_url=storage,
            private_storage_url=private,
            s3_endpoint_url=env.get("STORYMEDIA_S3_ENDPOINT_URL") or None,
            s3_public_endpoint_url=env.get("STORYMEDIA_S3_PUBLIC_ENDPOINT_URL") or None,
            s3_region=env.get("STORYMEDIA_S3_REGION") or None,
            multipart_mb=int(number("STORYMEDIA_S3_MULTIPART_MB", 16)),
            public_url=env.get("STORYMEDIA_PUBLIC_URL") or None,
            presign_expiry=int(number("STORYMEDIA_PRESIGN_EXPIRY", 3600)),
            s3_cors_origins=_origins(env.get("STORYMEDIA_S3_CORS_ORIGINS", "")),
            presets_dir=Path(presets) if presets else None,
            scratch=Path(env.get("STORYMEDIA_SCRATCH") or Path(tempfile.gettempdir()) / "storymedia"),
            time_limit=hard,
            soft_time_limit=soft,
            visibility_timeout=number("STORYMEDIA_VISIBILITY_TIMEOUT", 4 * 3600),
            max_attempts=int(number("STORYMEDIA_MAX_ATTEMPTS", 3)),
            restore_interval=number("STORYMEDIA_RESTORE_INTERVAL", 30),
            soft_shutdown_timeout=number("STORYMEDIA_SOFT_SHUTDOWN_TIMEOUT", 25),
            max_memory_mb=int(number("STORYMEDIA_MAX_MEMORY_MB", 3000)),
            stale_after=number("STORYMEDIA_STALE_AFTER", 2 * hard),
            reconcile_every=number("STORYMEDIA_RECONCILE_EVERY", 600),
            upload_expiry=number("STORYMEDIA_UPLOAD_EXPIRY", 24 * 3600),
            log_format=env.get("STORYMEDIA_LOG_FORMAT", "").strip().lower(),
            webhook_hosts=tuple(h.strip().lower() for h in env.get("STORYMEDIA_WEBHOOK_HOSTS", "").split(",")
                                if h.strip()),
            webhook_allow_private=env.get("STORYMEDIA_WEBHOOK_ALLOW_PRIVATE", "") in ("1", "true", "yes"),
        )

    def as_env(self) -> dict[str, str]:
        """The broker and stores as environment variables, for a process started from these
        settings (``storymedia worker`` execs Celery, which reads the environment)."""
        return {"STORYMEDIA_BROKER_URL": self.broker_url, "STORYMEDIA_STORAGE_URL": self.storage_url,
                "STORYMEDIA_PRIVATE_STORAGE_URL": self.private_storage_url}

    def check(self) -> None:
        """Refuse settings under which a long task would be delivered twice, or never stopped."""
        if self.soft_time_limit >= self.time_limit:
            raise ConfigError(f"STORYMEDIA_SOFT_TIME_LIMIT ({self.soft_time_limit:.0f} s) must be below"
                              f" STORYMEDIA_TIME_LIMIT ({self.time_limit:.0f} s)")
        if self.visibility_timeout <= self.time_limit:
            raise ConfigError(
                f"STORYMEDIA_VISIBILITY_TIMEOUT ({self.visibility_timeout:.0f} s) must be above"
                f" STORYMEDIA_TIME_LIMIT ({self.time_limit:.0f} s): Redis would hand a task that is"
                " still running to a second worker")
        self.check_broker()

    def check_broker(self) -> None:
        """Refuse a broker that is not Redis: kombu would take another scheme (``memory://``) and
        drop the messages where no worker ever looks."""
        if not self.broker_url.startswith(("redis://", "rediss://")):
            raise ConfigError("the broker URL (--broker-url or STORYMEDIA_BROKER_URL) must be a redis://"
                              f" or rediss:// URL (got {redact_url(self.broker_url)!r})")
