"""Tokens: hashes only on disk, 401 without a valid one, 403 for the wrong role."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from api.auth import TokenStore
from tests.api.harness import Service
from tests.servers import STORYMEDIA


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


def _expire(service: Service, token_id: str) -> None:
    """Move a token's expiry into the past in the tokens file (as time would)."""
    path = service.config.tokens_file
    data = json.loads(path.read_text())
    for entry in data["tokens"]:
        if entry["id"] == token_id:
            entry["expires"] = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="seconds")
    path.write_text(json.dumps(data))


def test_a_token_works_until_it_expires_then_is_refused_saying_so(client: TestClient, service: Service) -> None:
    store = TokenStore(service.config.tokens_file)
    token, who = store.create("editor", "thoi-su", "trial", expires_in=timedelta(days=30))
    assert who.expires and datetime.fromisoformat(who.expires) > datetime.now(UTC) + timedelta(days=29)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/v1/stories", headers=headers).status_code == 200
    assert store.by_id(who.id) == who
    _expire(service, who.id)
    refused = client.get("/v1/stories", headers=headers)
    assert refused.status_code == 401 and refused.headers["content-type"] == "application/problem+json"
    assert "expired" in refused.json()["detail"] and token not in refused.text
    assert store.check(token) is None and store.by_id(who.id) is None, "its page sessions end too"
    assert [w.id for w in store.list()].count(who.id) == 1, "listed (as expired) until revoked"
    assert client.get("/v1/stories", headers=service.auth("editor")).status_code == 200, "others still work"


def test_a_token_without_an_expiry_never_expires(service: Service) -> None:
    store = TokenStore(service.config.tokens_file)
    assert all(who.expires == "" for who in store.list())
    assert store.check(service.tokens["producer"]) is not None


def test_the_command_line_gives_an_expiry_and_refuses_a_bad_one(tmp_path: Path) -> None:
    env = {**os.environ, "STORYMEDIA_TOKENS_FILE": str(tmp_path / "tokens.json")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([STORYMEDIA, "token", *args, "--out", str(tmp_path / "data")], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)

    made = cli("create", "--role", "producer", "--desk", "thoi-su", "--expires", "12h")
    assert made.returncode == 0, made.stderr
    assert "until" in made.stdout and made.stdout.strip().splitlines()[-1].startswith("smt_")
    stored = json.loads((tmp_path / "tokens.json").read_text())["tokens"][0]
    left = datetime.fromisoformat(stored["expires"]) - datetime.now(UTC)
    assert timedelta(hours=11, minutes=58) < left <= timedelta(hours=12)
    listed = cli("list")
    assert listed.returncode == 0 and "until " in listed.stdout
    for bad in ("5x", "0d", "-3d", "soon"):
        refused = cli("create", "--role", "producer", "--desk", "thoi-su", "--expires", bad)
        assert refused.returncode != 0 and "--expires" in refused.stderr + refused.stdout
        assert "Traceback" not in refused.stderr + refused.stdout
    assert len(json.loads((tmp_path / "tokens.json").read_text())["tokens"]) == 1
