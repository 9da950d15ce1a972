"""The HTTP service under test: in-process (FastAPI's TestClient) or as a real uvicorn server on a
free port of 127.0.0.1 (for clients that speak HTTP themselves: tuspy, SSE readers, webhooks)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from api.app import create_app
from api.auth import TokenStore
from api.config import ServiceConfig
from tests.servers import free_ports

PRESETS = Path(__file__).resolve().parents[2] / "presets"

ROLES = {
    "producer": ("producer", "thoi-su"),
    "producer-kinh-te": ("producer", "kinh-te"),
    "editor": ("editor", "thoi-su"),
    "operator": ("operator", "van-hanh"),
}
"""Who the tests act as: name -> (role, desk)."""


@dataclass
class Service:
    config: ServiceConfig
    app: FastAPI
    tokens: dict[str, str] = field(default_factory=dict)
    """ROLES name -> bearer token."""

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def make_service(data: Path, env: Mapping[str, str] | None = None, **config: Any) -> Service:
    """A service on ``data`` (embedded unless ``env`` names a broker), with a token per ROLES."""
    settings = ServiceConfig.from_env({"STORYMEDIA_PRESETS": str(PRESETS), **(env or {})}, data=data, **config)
    store = TokenStore(settings.tokens_file)
    tokens = {name: store.create(role, desk, name)[0] for name, (role, desk) in ROLES.items()}
    return Service(config=settings, app=create_app(settings), tokens=tokens)


class LiveServer:
    """The app served by uvicorn in a thread, on a free port; ``url`` is its base URL."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None,
                                                    lifespan="on", timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the service did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
