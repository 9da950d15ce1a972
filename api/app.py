"""The FastAPI application: ``create_app(config)``; ``storymedia serve`` runs it with uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from api import metrics, problems, webhook_sender
from api.auth import TokenStore
from api.backend import Backend
from api.body_limit import BodyLimit
from api.config import ServiceConfig
from api.pages import access as page_access
from api.pages import assets as page_assets
from api.pages import editor as editor_page
from api.pages import ops as ops_page
from api.pages import producer as producer_page
from api.pages import routes as pages
from api.routes import jobs, manifests, operations, stories, uploads, webhooks
from api.service import Service, open_backend
from api.uploads import start_cleaner
from pipeline import __version__

DESCRIPTION = """The storymedia service: stories, resumable uploads (tus 1.0), jobs with live events,
manifests with presigned URLs, re-run and cancel, queues and workers, signed webhooks.

Every request but `/healthz`, `/readyz` and `/metrics` needs `Authorization: Bearer <token>` (a token from
`storymedia token create`). Errors are RFC 9457 problem documents with a `code`, an English
`title` and a Vietnamese `title_vi`."""


def create_app(config: ServiceConfig, backend: Backend | None = None) -> FastAPI:
    """The service for ``config`` (the executor it asks for unless ``backend`` is given)."""
    executor = backend or open_backend(config)
    svc = Service(config=config, backend=executor, tokens=TokenStore(config.tokens_file))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        executor.start()
        metrics.start(svc)
        webhook_sender.start(svc)
        stop_cleaner = start_cleaner(svc)
        try:
            yield
        finally:
            stop_cleaner()
            webhook_sender.stop(svc)
            metrics.stop(svc)
            executor.stop()

    app = FastAPI(title="storymedia", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  docs_url="/docs", redoc_url=None)
    app.state.service = svc
    problems.install(app)
    app.add_middleware(BodyLimit)
    for module in (stories, jobs, manifests, operations, webhooks, uploads, pages, page_assets,
                   producer_page, ops_page, editor_page):
        app.include_router(module.router)

    @app.exception_handler(page_access.PageDenied)
    async def _page_denied(request: Request, exc: page_access.PageDenied) -> Response:
        return exc.response

    metrics.install(app, svc)
    return app
