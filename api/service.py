"""The running service: its settings, its executor and its tokens (``app.state.service``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from api.auth import TokenStore
from api.backend import Backend
from api.config import ServiceConfig


@dataclass
class Service:
    config: ServiceConfig
    backend: Backend
    tokens: TokenStore
    extras: dict[str, Any] = field(default_factory=dict)
    """What optional parts keep for the service's lifetime (the webhook sender, the upload store)."""


def open_backend(config: ServiceConfig) -> Backend:
    """The executor the settings ask for: the cluster when a broker is set, else embedded."""
    if config.broker_url:
        from api.cluster import ClusterBackend  # Celery and Redis load only for the cluster

        cluster: Backend = ClusterBackend(config)
        return cluster
    from api.embedded import EmbeddedBackend

    return EmbeddedBackend(config)


def service(request: Request) -> Service:
    found: Service = request.app.state.service
    return found
