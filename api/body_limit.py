"""A bound on request bodies: JSON documents (stories, webhooks, re-runs) are small, and FastAPI
reads a body whole into memory before validating it. The tus routes stream their bodies and keep
their own limits (``/v1/uploads``)."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import body

MAX_JSON_BYTES = 4 * 1024 * 1024
"""Far above any story (500 assets, 2,000-character captions)."""
STREAMED = ("/v1/uploads",)


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int = MAX_JSON_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(STREAMED):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, send)
            return
        seen, over = 0, False

        async def counted() -> Message:
            # Past the limit the body ends there (FastAPI turns a raised error into its own 400);
            # whatever the app answers to the cut body is replaced by the 413.
            nonlocal seen, over
            if over:
                return {"type": "http.request", "body": b"", "more_body": False}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    over = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def watched(message: Message) -> None:
            if not over:
                await send(message)
            elif message["type"] == "http.response.start":
                await self._refuse(scope, send)

        await self.app(scope, counted, watched)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        document: Any = body("too-large", f"a request body may have at most {self.limit // 1024 // 1024} MB"
                             " here (files go through /v1/uploads)", instance=str(scope.get("path", "")))
        data = json.dumps(document, ensure_ascii=False).encode("utf-8")
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/problem+json"),
                                (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})

