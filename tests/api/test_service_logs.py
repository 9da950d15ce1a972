"""The service's log lines under STORYMEDIA_LOG_FORMAT=json: uvicorn's access log on a real server
comes out as JSON lines, without the signature of a presigned URL or a bearer token."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator

import httpx
import pytest

from api.logs import configure_logging
from tests.api.harness import LiveServer, Service

SIGNATURE = "9f2c4be1d07a65c3e8f1a2b4c6d8e0f1"


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure_logging("json", stream=stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_the_access_log_of_a_real_server_is_json_without_secrets(lines: io.StringIO, service: Service,
                                                                 live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as http:
        assert http.get("/healthz").status_code == 200
        http.get(f"/v1/files/renditions/a/web@1/w320.webp?expires=1&signature={SIGNATURE}")
        http.get("/v1/stories", headers=service.auth("producer"))
    deadline = time.monotonic() + 5
    while lines.getvalue().count('"uvicorn.access"') < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    records = [json.loads(line) for line in lines.getvalue().splitlines()]
    access = [r for r in records if r["logger"] == "uvicorn.access"]
    assert len(access) == 3
    assert '"GET /healthz HTTP/1.1" 200' in str(access[0]["message"])
    assert "signature=***" in str(access[1]["message"])
    text = lines.getvalue()
    assert SIGNATURE not in text
    assert all(token not in text for token in service.tokens.values())
