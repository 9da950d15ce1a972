"""Who may do what: every route of the service, every caller (no token, the producer of the story's
desk, a producer of another desk, an editor, an operator), the status each gets.

The matrix is built from ``app.routes``: a route added without a row here fails
``test_every_route_has_a_row``. The service is the embedded one, in-process, with a story of the
producer's desk that was uploaded, submitted and finished before the matrix runs (so every read
has something to read).
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

from api.embedded import sign
from tests.api.harness import Service, make_service
from tests.fixtures import photo

STORY_ID = "vai-tro-thu-nghiem"
PHOTO = "media/anh-01.jpg"
WEBHOOK_HOST = "8.8.8.8"
"""A public address on the webhook allow list (registration resolves nothing; no delivery succeeds)."""

WHO = ("none", "producer", "producer-kinh-te", "editor", "operator")
"""Callers: no token; tests.api.harness.ROLES (the story belongs to ``producer``'s desk)."""


def tus_metadata(**values: str) -> str:
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in values.items())


def photo_bytes(size: tuple[int, int] = (640, 480), seed: int = 3) -> bytes:
    buffer = io.BytesIO()
    photo(size, seed=seed).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def start_upload(client: TestClient, headers: dict[str, str], story_id: str, name: str, length: int) -> Any:
    """``POST /v1/uploads`` (tus creation) for the story's file ``name``."""
    return client.post("/v1/uploads", headers={**headers, "Tus-Resumable": "1.0.0", "Upload-Length": str(length),
                                               "Upload-Metadata": tus_metadata(story=story_id, file=name)})


def send_bytes(client: TestClient, headers: dict[str, str], location: str, data: bytes, offset: int = 0,
               checksum: str | None = None) -> Any:
    """``PATCH`` (tus) ``data`` at ``offset``; ``checksum``: an ``Upload-Checksum`` header value."""
    extra = {"Upload-Checksum": checksum} if checksum else {}
    return client.patch(location, content=data, headers={
        **headers, **extra, "Tus-Resumable": "1.0.0", "Upload-Offset": str(offset),
        "Content-Type": "application/offset+octet-stream"})


def upload_file(client: TestClient, headers: dict[str, str], story_id: str, name: str, data: bytes) -> str:
    """The whole file uploaded over tus; returns the upload's URL."""
    created = start_upload(client, headers, story_id, name, len(data))
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    sha = base64.b64encode(hashlib.sha256(data).digest()).decode()
    sent = send_bytes(client, headers, location, data, checksum=f"sha256 {sha}")
    assert sent.status_code == 204, sent.text
    return str(location)


def small_story(story_id: str = STORY_ID, name: str = PHOTO) -> dict[str, Any]:
    return {"story": {"id": story_id, "title": "Kiểm tra quyền truy cập", "byline": "Đình Hà",
                      "published": "2023-09-12T21:15:00+07:00", "presets": ["web"]},
            "assets": [{"file": name, "caption": "Hội nghị cán bộ", "credit": "Đình Hà"}]}


def wait_final(client: TestClient, headers: dict[str, str], job_id: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/v1/jobs/{job_id}", headers=headers)
        assert status.status_code == 200, status.text
        if status.json()["final"]:
            found: dict[str, Any] = status.json()
            return found
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} not final after {timeout:.0f} s")


@dataclass
class World:
    """The service and what exists in it when the matrix runs."""

    service: Service
    client: TestClient
    job: str
    manifest: dict[str, Any]
    data: bytes
    hook: Any
    """The answer to registering a webhook endpoint (before the job, so its manifest made a delivery)."""

    def auth(self, who: str) -> dict[str, str]:
        return {} if who == "none" else self.service.auth(who)

    @property
    def webhook(self) -> str:
        assert self.hook.status_code == 201, f"POST /v1/webhooks: {self.hook.status_code} {self.hook.text}"
        return str(self.hook.json()["id"])

    @property
    def delivery(self) -> str:
        listed = self.client.get(f"/v1/webhooks/{self.webhook}/deliveries", headers=self.auth("operator"))
        assert listed.status_code == 200, listed.text
        body = listed.json()
        items = body.get("deliveries", body.get("items")) if isinstance(body, dict) else body
        assert items, f"the published manifest made a delivery: {body}"
        return str(items[0]["id"])

    def operator_upload(self) -> str:
        """A fresh, unfinished upload of the story's photo, made by an operator."""
        created = start_upload(self.client, self.auth("operator"), STORY_ID, PHOTO, len(self.data))
        assert created.status_code == 201, created.text
        return str(created.headers["location"])

    def operator_webhook(self) -> str:
        made = self.client.post("/v1/webhooks", headers=self.auth("operator"),
                                json={"url": f"https://{WEBHOOK_HOST}/cms/hook", "events": ["job.failed"]})
        assert made.status_code == 201, made.text
        return str(made.json()["id"])

    def signed_file(self, key: str) -> str:
        until = int(time.time()) + 600
        return f"/v1/files/{key}?expires={until}&signature={sign(self.service.config.secret, key, until)}"

    def rendition_key(self) -> str:
        return str(self.manifest["assets"][0]["renditions"][0]["key"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    service = make_service(tmp_path_factory.mktemp("roles") / "data",
                           env={"STORYMEDIA_WEBHOOK_HOSTS": WEBHOOK_HOST})
    data = photo_bytes()
    with TestClient(service.app) as client:
        operator, producer = service.auth("operator"), service.auth("producer")
        hook = client.post("/v1/webhooks", headers=operator, json={
            "url": f"https://{WEBHOOK_HOST}/cms/hook", "events": ["story.manifest.published"]})
        created = client.post("/v1/stories", headers=producer, json=small_story())
        assert created.status_code == 201, created.text
        upload_file(client, producer, STORY_ID, PHOTO, data)
        submitted = client.post(f"/v1/stories/{STORY_ID}/jobs", headers=producer)
        assert submitted.status_code == 202, submitted.text
        job = submitted.json()["id"]
        assert wait_final(client, producer, job)["state"] == "complete"
        manifest = client.get(f"/v1/stories/{STORY_ID}/manifest", headers=producer).json()
        yield World(service, client, job, manifest, data, hook)
        _wait_idle(client, producer)


def _wait_idle(client: TestClient, headers: dict[str, str], timeout: float = 180) -> None:
    """Jobs the matrix started are finished before the service stops (no pool left running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.get(f"/v1/stories/{STORY_ID}", headers=headers).json().get("state")
        if state not in ("queued", "running"):
            return
        time.sleep(0.5)


# the matrix ------------------------------------------------------------------------------------

Request = Callable[[World, str], tuple[str, str, dict[str, Any]]]
"""(world, caller) -> (method, path, keyword arguments of TestClient.request)."""


@dataclass(frozen=True)
class Row:
    method: str
    route: str
    expect: dict[str, frozenset[int]]
    request: Request
    why: str = ""


def expect(none: Any, producer: Any, other: Any, editor: Any, operator: Any) -> dict[str, frozenset[int]]:
    def codes(value: Any) -> frozenset[int]:
        return frozenset(value) if isinstance(value, set | frozenset | tuple) else frozenset({value})

    return dict(zip(WHO, (codes(none), codes(producer), codes(other), codes(editor), codes(operator)),
                    strict=True))


def public(ok: Any = 200) -> dict[str, frozenset[int]]:
    return expect(ok, ok, ok, ok, ok)


def desk_read(ok: Any = 200) -> dict[str, frozenset[int]]:
    """Producers of the story's desk, editors and operators."""
    return expect(401, ok, 403, ok, ok)


def desk_write(ok: Any) -> dict[str, frozenset[int]]:
    """Producers of the story's desk and operators; never editors."""
    return expect(401, ok, 403, 403, ok)


def operators(ok: Any = 200) -> dict[str, frozenset[int]]:
    return expect(401, 403, 403, 403, ok)


def get(path: str | Callable[[World], str], **kwargs: Any) -> Request:
    return lambda w, who: ("GET", path(w) if callable(path) else path, {"headers": w.auth(who), **kwargs})


def call(method: str, path: Callable[[World], str], extra: Callable[[World], dict[str, Any]] | None = None) -> Request:
    def request(w: World, who: str) -> tuple[str, str, dict[str, Any]]:
        kwargs = extra(w) if extra else {}
        kwargs["headers"] = {**kwargs.get("headers", {}), **w.auth(who)}
        return method, path(w), kwargs
    return request


TUS = {"Tus-Resumable": "1.0.0"}

ROWS = (
    Row("GET", "/healthz", public(), get("/healthz")),
    Row("GET", "/readyz", public(), get("/readyz")),
    Row("GET", "/metrics", public(), get("/metrics"), "Prometheus scrapes without a token; no ids in it"),
    Row("GET", "/openapi.json", public(), get("/openapi.json")),
    Row("GET", "/docs", public(), get("/docs")),
    Row("GET", "/docs/oauth2-redirect", public(), get("/docs/oauth2-redirect")),
    Row("POST", "/v1/stories", desk_write(200),
        call("POST", lambda w: "/v1/stories", lambda w: {"json": small_story()}),
        "replacing the desk's story; another desk's producer may not take it over"),
    Row("GET", "/v1/stories", expect(401, 200, 200, 200, 200), get("/v1/stories"),
        "everyone lists; a producer sees their own desk's only (test_a_producer_lists_their_desk_only)"),
    Row("GET", "/v1/stories/{}", desk_read(), get(f"/v1/stories/{STORY_ID}")),
    Row("POST", "/v1/stories/{}/jobs", desk_write({200, 202}),
        call("POST", lambda w: f"/v1/stories/{STORY_ID}/jobs")),
    Row("GET", "/v1/jobs/{}", desk_read(), get(lambda w: f"/v1/jobs/{w.job}")),
    Row("GET", "/v1/jobs/{}/events", desk_read(), get(lambda w: f"/v1/jobs/{w.job}/events")),
    Row("POST", "/v1/jobs/{}/assets/{}/rerun", operators({202, 409}),
        call("POST", lambda w: f"/v1/jobs/{w.job}/assets/1/rerun"), "409 while the job runs again"),
    Row("POST", "/v1/jobs/{}/cancel", operators({200, 202, 409}),
        call("POST", lambda w: f"/v1/jobs/{w.job}/cancel"), "409 or done=false: it had finished"),
    Row("GET", "/v1/stories/{}/manifest", desk_read(),
        get(f"/v1/stories/{STORY_ID}/manifest", params={"presign": 1})),
    Row("GET", "/v1/stories/{}/manifest/versions/{}", desk_read(),
        get(f"/v1/stories/{STORY_ID}/manifest/versions/1")),
    Row("GET", "/v1/files/{}", public(), get(lambda w: w.signed_file(w.rendition_key())),
        "the signature is the permission (a presigned URL); no token asked"),
    Row("GET", "/v1/queues", operators(), get("/v1/queues")),
    Row("GET", "/v1/workers", operators(), get("/v1/workers")),
    Row("OPTIONS", "/v1/uploads", public({200, 204}), call("OPTIONS", lambda w: "/v1/uploads"),
        "the tus discovery and CORS preflight carry no token"),
    Row("POST", "/v1/uploads", desk_write(201),
        call("POST", lambda w: "/v1/uploads", lambda w: {"headers": {
            **TUS, "Upload-Length": str(len(w.data)), "Upload-Metadata": tus_metadata(story=STORY_ID, file=PHOTO)}})),
    Row("HEAD", "/v1/uploads/{}", desk_write(200),
        call("HEAD", lambda w: w.operator_upload(), lambda w: {"headers": dict(TUS)})),
    Row("PATCH", "/v1/uploads/{}", desk_write(204),
        call("PATCH", lambda w: w.operator_upload(), lambda w: {"content": w.data, "headers": {
            **TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}})),
    Row("DELETE", "/v1/uploads/{}", desk_write(204),
        call("DELETE", lambda w: w.operator_upload(), lambda w: {"headers": dict(TUS)})),
    Row("POST", "/v1/webhooks", operators(201),
        call("POST", lambda w: "/v1/webhooks",
             lambda w: {"json": {"url": f"https://{WEBHOOK_HOST}/cms/other", "events": ["job.failed"]}})),
    Row("GET", "/v1/webhooks", operators(), get("/v1/webhooks")),
    Row("DELETE", "/v1/webhooks/{}", operators({200, 204}),
        call("DELETE", lambda w: f"/v1/webhooks/{w.operator_webhook()}")),
    Row("GET", "/v1/webhooks/{}/deliveries", operators(), get(lambda w: f"/v1/webhooks/{w.webhook}/deliveries")),
    Row("POST", "/v1/webhooks/{}/deliveries/{}/replay", operators({200, 202}),
        call("POST", lambda w: f"/v1/webhooks/{w.webhook}/deliveries/{w.delivery}/replay")),
)

ORDER = ("none", "producer-kinh-te", "editor", "producer", "operator")
"""Refusals first: a row's allowed calls (a re-run, a DELETE) come after its refused ones."""


def template(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def app_routes(service: Service) -> set[tuple[str, str]]:
    """(method, path template) of every route of the API, routers included (a mount counts as
    MOUNT); the pages have their own matrix."""
    found = set()
    for context in iter_route_contexts(service.app.routes):
        route = context.original_route
        if getattr(getattr(route, "endpoint", None), "__module__", "").startswith("api.pages."):
            continue   # the pages: a session, not a bearer token (tests/pages/test_page_access.py)
        path = template(context.path_format or context.path or "?")
        if isinstance(route, Mount):
            found.add(("MOUNT", path))
        elif isinstance(route, APIRoute | Route):
            methods = set(route.methods or ())
            if not isinstance(route, APIRoute) and "GET" in methods:
                methods.discard("HEAD")      # Starlette's implicit HEAD of a GET
            found |= {(method, path) for method in methods}
        else:
            found.add((type(route).__name__, path))
    return found


def test_every_route_has_a_row(tmp_path: Path) -> None:
    routes = app_routes(make_service(tmp_path / "data"))
    rows = {(row.method, row.route) for row in ROWS}
    assert sorted(routes - rows) == [], "a route without a row in the matrix"
    assert sorted(rows - routes) == [], "a row for a route the service does not serve (yet)"


@pytest.mark.parametrize("row", ROWS, ids=[f"{row.method} {row.route}" for row in ROWS])
def test_role_matrix(world: World, row: Row) -> None:
    answered = {}
    for who in ORDER:
        method, path, kwargs = row.request(world, who)
        if row.route.endswith("/events"):
            with world.client.stream(method, path, **kwargs) as response:
                response.read()
        else:
            response = world.client.request(method, path, **kwargs)
        answered[who] = response.status_code
        if response.status_code in (401, 403) and method != "HEAD":     # a HEAD answer has no body
            assert response.headers["content-type"] == "application/problem+json", (who, response.text)
            assert response.json()["code"] == {401: "unauthorized", 403: "forbidden"}[response.status_code]
    wrong = {who: (answered[who], sorted(row.expect[who])) for who in WHO if answered[who] not in row.expect[who]}
    assert wrong == {}, f"{row.method} {row.route}: who -> (answered, expected)"


def test_a_producer_lists_their_desk_only(world: World) -> None:
    def ids(who: str, **params: str) -> list[str]:
        found = world.client.get("/v1/stories", headers=world.auth(who), params=params)
        assert found.status_code == 200, found.text
        return [story["id"] for story in found.json()["stories"]]

    assert STORY_ID in ids("producer") and STORY_ID in ids("editor") and STORY_ID in ids("operator")
    assert STORY_ID not in ids("producer-kinh-te")
    refused = world.client.get("/v1/stories", headers=world.auth("producer-kinh-te"), params={"desk": "thoi-su"})
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"


def test_another_desk_cannot_create_its_own_story_with_a_taken_id(world: World) -> None:
    taken = world.client.post("/v1/stories", headers=world.auth("producer-kinh-te"), json=small_story())
    assert taken.status_code == 403, taken.text
    shown = world.client.get(f"/v1/stories/{STORY_ID}", headers=world.auth("operator")).json()
    assert shown["desk"] == "thoi-su", "the story stays its desk's"


def test_editors_never_get_a_raw_file(world: World) -> None:
    """Even a correctly signed link to a raw original is refused: only public objects are served."""
    sha = hashlib.sha256(world.data).hexdigest()
    for key in (f"raw/{sha[:2]}/{sha}", f"raw/{sha}", f"renditions/../raw/{sha[:2]}/{sha}"):
        refused = world.client.get(world.signed_file(key), headers=world.auth("editor"))
        assert refused.status_code in (403, 404), (key, refused.status_code)
        assert refused.headers["content-type"] == "application/problem+json"
        assert world.data not in refused.content
    served = world.client.get(world.signed_file(world.rendition_key()))
    assert served.status_code == 200 and served.content[:2] == b"\xff\xd8"
    forged = world.client.get(world.signed_file(world.rendition_key()).replace("signature=", "signature=0"))
    assert forged.status_code == 403


def test_an_editors_presigned_manifest_names_renditions_only(world: World) -> None:
    signed = world.client.get(f"/v1/stories/{STORY_ID}/manifest", headers=world.auth("editor"),
                              params={"presign": 1})
    assert signed.status_code == 200, signed.text
    urls = [r["url"] for a in signed.json()["assets"] for r in a["renditions"]]
    assert urls and all("/v1/files/renditions/" in url for url in urls)
