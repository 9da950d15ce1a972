"""What a worker process (or the CLI) opens once: the store, the presets, the live-progress client."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pipeline.ingest.limits import Limits, load_limits
from pipeline.model.presets import Preset, load_presets
from pipeline.storage import Storage, open_storage
from workers.live import Live
from workers.settings import Settings


def open_store(settings: Settings) -> Storage:
    """The public area: renditions and manifests (URLs in the manifest point here)."""
    return open_storage(settings.storage_url, settings.public_url,
                        endpoint_url=settings.s3_endpoint_url,
                        presign_endpoint_url=settings.s3_public_endpoint_url,
                        region=settings.s3_region,
                        presign_expiry=settings.presign_expiry,
                        multipart_bytes=settings.multipart_mb * 1024 * 1024)


def open_private_store(settings: Settings) -> Storage:
    """The private area: raws and job records, on the same S3 endpoint; no public URL, ever."""
    return open_storage(settings.private_storage_url, None,
                        endpoint_url=settings.s3_endpoint_url,
                        presign_endpoint_url=settings.s3_public_endpoint_url,
                        region=settings.s3_region,
                        presign_expiry=settings.presign_expiry,
                        multipart_bytes=settings.multipart_mb * 1024 * 1024)


@dataclass(frozen=True)
class Context:
    settings: Settings
    storage: Storage
    """The public area (renditions, manifests)."""
    private: Storage
    """The private area (raws, job records)."""
    presets: dict[str, Preset]
    live: Live
    limits: Limits

    @property
    def raw_cache(self) -> Path:
        return self.settings.scratch / "raw"

    @property
    def scratch(self) -> Path:
        path = self.settings.scratch / "work"
        path.mkdir(parents=True, exist_ok=True)
        return path


def context() -> Context:
    """This process's context, for the settings the app runs with (``workers.app.configure_app``,
    or the environment in a process Celery started); opened on first use, after the worker forked."""
    from workers.app import current_settings

    return open_context(current_settings())


@cache
def open_context(settings: Settings) -> Context:
    """The store, presets and live-progress client for ``settings``, opened once per settings."""
    return Context(settings=settings, storage=open_store(settings), private=open_private_store(settings),
                   presets=load_presets(settings.presets_dir), live=Live(settings.broker_url),
                   limits=load_limits(settings.presets_dir))
