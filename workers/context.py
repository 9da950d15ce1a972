"""What a worker process (or the CLI) opens once: the Celery app, the stores, the presets, the
live-progress client."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from celery import current_app

from pipeline.ingest.limits import Limits, load_limits
from pipeline.model.presets import Preset, load_presets
from pipeline.storage import Storage, open_storage
from workers.app import ClusterApp, app_settings, create_app
from workers.live import Live
from workers.settings import Settings


def open_store(settings: Settings) -> Storage:
    """The public area: renditions and manifests (URLs in the manifest point here)."""
    return open_storage(settings.storage_url, settings.public_url,
                        endpoint_url=settings.s3_endpoint_url,
                        presign_endpoint_url=settings.s3_public_endpoint_url,
                        region=settings.s3_region,
                        presign_expiry=settings.presign_expiry,
                        multipart_bytes=settings.multipart_mb * 1024 * 1024,
                        cors_origins=settings.s3_cors_origins)


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
    app: ClusterApp
    """The Celery app messages are sent with."""

    @property
    def raw_cache(self) -> Path:
        return self.settings.scratch / "raw"

    @property
    def scratch(self) -> Path:
        path = self.settings.scratch / "work"
        path.mkdir(parents=True, exist_ok=True)
        return path


def context() -> Context:
    """The context of the Celery app this process runs (a worker's, in a task), for the settings
    that app was built from; opened on first use, after the worker forked."""
    app = current_app._get_current_object()
    return open_context(app_settings(app), app)


@cache
def open_context(settings: Settings, app: ClusterApp | None = None) -> Context:
    """The Celery app (a new one from ``settings`` unless given), stores, presets and live-progress
    client for ``settings``: opened once per settings and app."""
    return Context(settings=settings, storage=open_store(settings), private=open_private_store(settings),
                   presets=load_presets(settings.presets_dir), live=Live(settings.broker_url),
                   limits=load_limits(settings.presets_dir),
                   app=create_app(settings) if app is None else app)
