"""Errors are RFC 9457 problem documents: a code, English and Vietnamese titles, field paths."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.problems import TITLES
from tests.api.harness import Service


def test_every_problem_has_a_vietnamese_title_of_its_own() -> None:
    for code, (status, title, title_vi) in TITLES.items():
        assert 400 <= status < 600 and title and title_vi and title_vi != title, code


def test_a_wrong_method_names_every_method_the_path_answers(client: TestClient, service: Service) -> None:
    response = client.delete("/v1/stories", headers=service.auth("operator"))
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["allow"] == "GET, POST"      # Starlette named the first route's only
    assert response.json()["code"] == "method-not-allowed"


def test_an_unknown_path_is_a_problem_too(client: TestClient, service: Service) -> None:
    response = client.get("/v1/nothing-here", headers=service.auth("operator"))
    assert response.status_code == 404
    assert response.json()["title_vi"] == "Không tìm thấy"


def test_invalid_fields_are_named_by_their_path_and_a_list_is_not_blamed_for_its_item(
        client: TestClient, service: Service) -> None:
    story = {"story": {"id": "Không phải slug", "title": "Tin", "published": "2023-09-12T21:15:00"},
             "assets": [{"file": "a.jpg", "caption": "bell\u0007"}]}
    response = client.post("/v1/stories", json=story, headers=service.auth("producer"))
    assert response.status_code == 422
    paths = [error["path"] for error in response.json()["errors"]]
    assert paths == ["story.id", "story.published", "assets.0.caption"]


def test_since_takes_an_iso_time_and_nothing_else(client: TestClient, service: Service) -> None:
    for bad in ("0.5", "1700000000", "hôm qua"):
        response = client.get("/v1/stories", params={"since": bad}, headers=service.auth("editor"))
        assert response.status_code == 422, bad
        assert response.json()["errors"][0]["path"] == "since"
    fine = client.get("/v1/stories", params={"since": "2026-12-03T08:00:00+07:00"}, headers=service.auth("editor"))
    assert fine.status_code == 200


def test_a_body_that_is_not_json_is_a_documented_bad_request(client: TestClient, service: Service) -> None:
    response = client.post("/v1/stories", content=b"-\xff", headers={**service.auth("producer"),
                                                                      "Content-Type": "application/json"})
    assert response.status_code in (400, 422)
    assert response.headers["content-type"] == "application/problem+json"
    documented = client.get("/openapi.json").json()["paths"]["/v1/stories"]["post"]["responses"]
    assert str(response.status_code) in documented


def test_a_json_body_past_the_limit_is_413_before_it_is_parsed(client: TestClient, service: Service) -> None:
    from api.body_limit import MAX_JSON_BYTES

    huge = b'{"story": "' + b"a" * (MAX_JSON_BYTES + 10) + b'"}'
    response = client.post("/v1/stories", content=huge, headers={**service.auth("producer"),
                                                                  "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "too-large"

    def chunks():   # no Content-Length: counted as it arrives
        for _ in range(5):
            yield b"a" * (MAX_JSON_BYTES // 4)

    streamed = client.post("/v1/stories", content=chunks(), headers={**service.auth("producer"),
                                                                      "Content-Type": "application/json"})
    assert streamed.status_code == 413
