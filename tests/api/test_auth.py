"""Tokens: hashes only on disk, 401 without a valid one, 403 for the wrong role."""

from __future__ import annotations

import json
import stat

from fastapi.testclient import TestClient

from tests.api.harness import Service


def test_the_tokens_file_keeps_hashes_only_and_is_private(service: Service) -> None:
    text = service.config.tokens_file.read_text()
    assert all(token not in text for token in service.tokens.values())
    assert len(json.loads(text)["tokens"]) == len(service.tokens)
    assert stat.S_IMODE(service.config.tokens_file.stat().st_mode) == 0o600


def test_no_token_or_a_wrong_one_is_401_with_a_problem(client: TestClient, service: Service) -> None:
    for headers in ({}, {"Authorization": "Bearer smt_not-a-token"}, {"Authorization": "Basic eDp5"}):
        response = client.get("/v1/stories", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith("Bearer")
        body = response.json()
        assert body["code"] == "unauthorized" and body["title_vi"]


def test_a_producer_may_not_reach_operations(client: TestClient, service: Service) -> None:
    response = client.get("/v1/queues", headers=service.auth("producer"))
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert client.get("/v1/queues", headers=service.auth("operator")).status_code == 200
