"""Bad input, as a producer or the CMS would send it by mistake (or on purpose): each refused with a
problem document a person can act on: a stable ``code``, an English ``title`` and a Vietnamese
``title_vi``, a ``detail`` that names what to fix, and the path of each wrong field in
``errors[].path``. Nothing is stored from a refused request.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pipeline.model.keys import raw_key
from tests.api.harness import LiveServer, Service, make_service
from tests.api.test_roles import photo_bytes, send_bytes, small_story, start_upload, tus_metadata, upload_file

STORY = "tin-kiem-tra-dau-vao"
PHOTO = "media/anh-01.jpg"


def assert_problem(response: Any, status: int, code: str, *, paths: tuple[str, ...] = (),
                   detail: tuple[str, ...] = ()) -> dict[str, Any]:
    """``response`` is the problem ``code`` (``status``) with both titles; ``paths`` are among its
    fields in error and the detail mentions every word of ``detail``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code and problem["status"] == status
    assert problem["type"] == f"urn:storymedia:problem:{code}"
    assert problem["title"] and problem["title_vi"] and problem["title"] != problem["title_vi"]
    found = [error["path"] for error in problem["errors"]]
    assert all(path in found for path in paths), (paths, problem["errors"])
    assert all(error["message"] for error in problem["errors"])
    assert all(word in problem["detail"] for word in detail), (detail, problem["detail"])
    assert "Traceback" not in response.text
    return problem


@pytest.fixture
def story(client: TestClient, service: Service) -> dict[str, Any]:
    """The producer's story with one photo, created, nothing uploaded."""
    document = small_story(STORY, PHOTO)
    created = client.post("/v1/stories", headers=service.auth("producer"), json=document)
    assert created.status_code == 201, created.text
    return document


def raws(service: Service) -> list[Path]:
    root = service.config.private_dir / "raw"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def uploads_on_disk(service: Service) -> list[Path]:
    root = service.config.private_dir / "uploads"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def read_answer(sock: socket.socket, timeout: float) -> tuple[bytes, bytes]:
    """(head, body) of one HTTP answer read off ``sock`` (a body of Content-Length bytes)."""
    sock.settimeout(timeout)
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head, body


# oversize ------------------------------------------------------------------------------------

def test_an_upload_above_the_limit_is_refused_before_its_body(tmp_path: Path) -> None:
    """A POST declaring a file past the limit and carrying it (creation-with-upload) is answered
    413 while the client has sent only its headers: the server never waits for the body."""
    service = make_service(tmp_path / "data", env={"STORYMEDIA_UPLOAD_MAX_BYTES": "1000000"})
    with TestClient(service.app) as client:
        assert client.post("/v1/stories", headers=service.auth("producer"),
                           json=small_story(STORY, PHOTO)).status_code == 201
        assert client.options("/v1/uploads").headers["tus-max-size"] == "1000000"
    declared = 5 * 1024**3
    token = service.auth("producer")["Authorization"]
    with LiveServer(service.app) as live, socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall("\r\n".join([
            "POST /v1/uploads HTTP/1.1", f"Host: 127.0.0.1:{live.port}", f"Authorization: {token}",
            "Tus-Resumable: 1.0.0", f"Upload-Length: {declared}",
            f"Upload-Metadata: {tus_metadata(story=STORY, file=PHOTO)}",
            "Content-Type: application/offset+octet-stream", f"Content-Length: {declared}", "", ""]).encode())
        started = time.monotonic()
        head, body = read_answer(sock, timeout=10)
        assert time.monotonic() - started < 5
    assert head.startswith(b"HTTP/1.1 413"), head
    assert b"content-type: application/problem+json" in head.lower()
    problem = json.loads(body)
    assert problem["code"] == "too-large" and problem["title_vi"]
    assert [error["path"] for error in problem["errors"]] == ["Upload-Length"]
    assert "1000000" in problem["detail"]
    assert uploads_on_disk(service) == [] and raws(service) == []


def test_an_oversize_upload_names_the_limit(client: TestClient, service: Service, story: dict[str, Any]) -> None:
    limit = int(client.options("/v1/uploads").headers["tus-max-size"])
    refused = start_upload(client, service.auth("producer"), STORY, PHOTO, limit + 1)
    assert_problem(refused, 413, "too-large", paths=("Upload-Length",), detail=(str(limit + 1), str(limit)))
    assert uploads_on_disk(service) == []


def test_a_patch_past_the_files_end_is_refused_before_its_body(client: TestClient, service: Service,
                                                               story: dict[str, Any]) -> None:
    producer = service.auth("producer")
    location = start_upload(client, producer, STORY, PHOTO, 1000).headers["location"]
    refused = send_bytes(client, producer, location, b"x" * 1001)
    assert_problem(refused, 413, "too-large", paths=("Content-Length",), detail=("1000",))
    head = client.head(location, headers={**producer, "Tus-Resumable": "1.0.0"})
    assert head.headers["upload-offset"] == "0"


# checksum ------------------------------------------------------------------------------------

def test_a_wrong_checksum_keeps_nothing(client: TestClient, service: Service, story: dict[str, Any]) -> None:
    producer = service.auth("producer")
    data = photo_bytes()
    location = start_upload(client, producer, STORY, PHOTO, len(data)).headers["location"]
    other = base64.b64encode(hashlib.sha256(data + b"!").digest()).decode()
    refused = send_bytes(client, producer, location, data, checksum=f"sha256 {other}")
    assert_problem(refused, 460, "checksum-mismatch", paths=("Upload-Checksum",))
    head = client.head(location, headers={**producer, "Tus-Resumable": "1.0.0"})
    assert head.status_code == 200 and head.headers["upload-offset"] == "0"
    assert raws(service) == []
    assert not service.config.private_dir.joinpath(raw_key(hashlib.sha256(data).hexdigest())).exists()
    files = client.get(f"/v1/stories/{STORY}", headers=producer).json()["files"]
    assert files == [{"file": PHOTO, "uploaded": False, "sha256": None, "bytes": None}]
    missing = client.post(f"/v1/stories/{STORY}/jobs", headers=producer)
    assert_problem(missing, 409, "missing-files", paths=("files",), detail=(PHOTO,))


def test_an_unknown_checksum_algorithm_is_refused(client: TestClient, service: Service,
                                                  story: dict[str, Any]) -> None:
    producer = service.auth("producer")
    data = photo_bytes()
    location = start_upload(client, producer, STORY, PHOTO, len(data)).headers["location"]
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()  # a wrong algorithm on purpose
    refused = send_bytes(client, producer, location, data, checksum=f"md5 {md5}")
    assert refused.status_code == 400, refused.text
    assert_problem(refused, 400, "bad-request", paths=("Upload-Checksum",), detail=("sha256",))
    assert raws(service) == []


# unknown story -------------------------------------------------------------------------------

def test_an_unknown_story_is_404_everywhere(client: TestClient, service: Service) -> None:
    producer = service.auth("producer")
    for response in (client.get("/v1/stories/khong-co-tin-nay", headers=producer),
                     client.post("/v1/stories/khong-co-tin-nay/jobs", headers=producer),
                     client.get("/v1/stories/khong-co-tin-nay/manifest", headers=producer)):
        assert_problem(response, 404, "not-found", detail=("khong-co-tin-nay", "POST /v1/stories"))
    upload = start_upload(client, producer, "khong-co-tin-nay", PHOTO, 100)
    assert_problem(upload, 404, "not-found", detail=("khong-co-tin-nay",))
    assert uploads_on_disk(service) == []
    job = client.get("/v1/jobs/20260101-000000-abcdef", headers=producer)
    assert_problem(job, 404, "not-found", detail=("20260101-000000-abcdef",))


def test_a_manifest_not_written_yet_is_404(client: TestClient, service: Service, story: dict[str, Any]) -> None:
    response = client.get(f"/v1/stories/{STORY}/manifest", headers=service.auth("producer"))
    assert_problem(response, 404, "not-found", detail=(STORY,))


# invalid fields ------------------------------------------------------------------------------

@pytest.mark.parametrize(("change", "path", "words"), [
    (lambda d: d["story"].pop("title"), "story.title", ("story.title", "required")),
    (lambda d: d["story"].update(published="2023-09-12T21:15:00"), "story.published", ("time zone",)),
    (lambda d: d["story"].update(published="12/09/2023"), "story.published", ("story.published",)),
    (lambda d: d["assets"][0].update(caption=["not", "text"]), "assets.0.caption", ("assets.0.caption",)),
    (lambda d: d["assets"][0].update(focus=[1.5, 0.5]), "assets.0.focus", ("between 0 and 1",)),
    (lambda d: d["assets"][0].update(lower_third={"name": "Ông A", "start": 5, "end": 2}),
     "assets.0.lower_third", ("end must be after start",)),
    (lambda d: d["assets"][0].update(colour="red"), "assets.0.colour", ("assets.0.colour",)),
    (lambda d: d.update(assets=[]), "assets", ("assets",)),
    (lambda d: d["story"].update(language="Vietnamese"), "story.language", ("story.language",)),
], ids=["missing-title", "no-zone", "not-a-date", "caption-list", "focus-outside", "lower-third-backwards",
        "unknown-field", "no-assets", "language"])
def test_an_invalid_field_is_named(client: TestClient, service: Service, change: Any, path: str,
                                   words: tuple[str, ...]) -> None:
    document = small_story(STORY, PHOTO)
    change(document)
    refused = client.post("/v1/stories", headers=service.auth("producer"), json=document)
    problem = assert_problem(refused, 422, "invalid", paths=(path,), detail=words)
    assert not [e for e in problem["errors"] if e["path"].startswith("body")], "paths are the document's"
    assert client.get(f"/v1/stories/{STORY}", headers=service.auth("producer")).status_code == 404


def test_an_unknown_preset_is_named(client: TestClient, service: Service) -> None:
    document = small_story(STORY, PHOTO)
    document["story"]["presets"] = ["web", "truyen-hinh-3d"]
    refused = client.post("/v1/stories", headers=service.auth("producer"), json=document)
    assert_problem(refused, 422, "invalid", paths=("story.presets",), detail=("truyen-hinh-3d", "web"))


def test_a_body_that_is_not_json_is_refused(client: TestClient, service: Service) -> None:
    headers = {**service.auth("producer"), "Content-Type": "application/json"}
    refused = client.post("/v1/stories", headers=headers, content=b'{"story": {"id": ')
    problem = assert_problem(refused, 422, "invalid")
    assert "JSON" in problem["detail"]


# paths in file names -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../anh.jpg", "media/../../anh.jpg", "/etc/passwd", "media\\anh.jpg"])
def test_a_path_outside_the_story_in_a_file_name_is_refused(client: TestClient, service: Service,
                                                            name: str) -> None:
    document = small_story(STORY, name)
    refused = client.post("/v1/stories", headers=service.auth("producer"), json=document)
    assert_problem(refused, 422, "invalid", paths=("assets.0.file",), detail=("relative",))
    subtitles = small_story(STORY, PHOTO)
    subtitles["assets"][0]["subtitles"] = name
    refused = client.post("/v1/stories", headers=service.auth("producer"), json=subtitles)
    assert_problem(refused, 422, "invalid", paths=("assets.0.subtitles",))


@pytest.mark.parametrize("name", ["../media/anh-01.jpg", "/etc/passwd", "media\\anh-01.jpg", "media/../../x"])
def test_a_path_outside_the_story_in_an_upload_is_refused(client: TestClient, service: Service,
                                                          story: dict[str, Any], name: str) -> None:
    refused = start_upload(client, service.auth("producer"), STORY, name, 100)
    assert_problem(refused, 422, "invalid", paths=("Upload-Metadata.file",), detail=("..",))
    assert uploads_on_disk(service) == []


def test_an_upload_of_a_file_the_story_does_not_name_is_refused(client: TestClient, service: Service,
                                                                story: dict[str, Any]) -> None:
    refused = start_upload(client, service.auth("producer"), STORY, "media/anh-99.jpg", 100)
    assert_problem(refused, 422, "invalid", paths=("Upload-Metadata.file",), detail=("anh-99.jpg", PHOTO))


# story ids -----------------------------------------------------------------------------------

@pytest.mark.parametrize("story_id", ["Tin_Nong", "tin nóng", "-bat-dau-bang-gach", "a" * 129, "tin/khac"])
def test_a_story_id_that_is_not_a_slug_is_refused_in_the_body(client: TestClient, service: Service,
                                                              story_id: str) -> None:
    refused = client.post("/v1/stories", headers=service.auth("producer"), json=small_story(story_id, PHOTO))
    assert_problem(refused, 422, "invalid", paths=("story.id",), detail=("slug",))
    assert client.get("/v1/stories", headers=service.auth("producer")).json()["stories"] == []


@pytest.mark.parametrize("story_id", ["Tin_Nong", "tin%20n%C3%B3ng", "-gach", "a" * 129, "%2e%2e", "tin.khac"])
def test_a_story_id_that_is_not_a_slug_is_refused_in_the_path(client: TestClient, service: Service,
                                                              story_id: str) -> None:
    producer = service.auth("producer")
    for response in (client.get(f"/v1/stories/{story_id}", headers=producer),
                     client.get(f"/v1/stories/{story_id}/manifest", headers=producer),
                     client.get(f"/v1/stories/{story_id}/manifest/versions/1", headers=producer),
                     client.post(f"/v1/stories/{story_id}/jobs", headers=producer)):
        assert_problem(response, 422, "invalid", paths=("story_id",), detail=("story_id",))


def test_a_job_id_of_the_wrong_form_is_refused(client: TestClient, service: Service) -> None:
    for job in ("not-a-job", "20260101-000000-ABCDEF", "x" * 300):
        refused = client.get(f"/v1/jobs/{job}", headers=service.auth("operator"))
        assert_problem(refused, 422, "invalid", paths=("job_id",))


# another desk --------------------------------------------------------------------------------

def test_a_token_of_another_desk_is_refused(client: TestClient, service: Service, story: dict[str, Any]) -> None:
    producer, other = service.auth("producer"), service.auth("producer-kinh-te")
    data = photo_bytes()
    upload_file(client, producer, STORY, PHOTO, data)
    for response in (client.get(f"/v1/stories/{STORY}", headers=other),
                     client.post("/v1/stories", headers=other, json=small_story(STORY, PHOTO)),
                     client.post(f"/v1/stories/{STORY}/jobs", headers=other),
                     client.get(f"/v1/stories/{STORY}/manifest", headers=other),
                     start_upload(client, other, STORY, PHOTO, len(data))):
        assert_problem(response, 403, "forbidden", detail=("another desk",))
    mine = start_upload(client, producer, STORY, PHOTO, len(data)).headers["location"]
    for method in ("HEAD", "DELETE"):
        refused = client.request(method, mine, headers={**other, "Tus-Resumable": "1.0.0"})
        assert refused.status_code == 403
    assert_problem(send_bytes(client, other, mine, data), 403, "forbidden", detail=("another desk",))
    desk = client.post("/v1/stories", headers=other, params={"desk": "thoi-su"},
                       json=small_story("tin-cua-ban-khac", PHOTO))
    assert_problem(desk, 403, "forbidden", detail=("own desk",))


# webhooks ------------------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "https://127.0.0.1/hook", "http://127.0.0.1:8000/hook", "https://169.254.169.254/latest/meta-data/",
    "http://169.254.169.254/latest/meta-data/iam/", "https://[::1]/hook", "https://localhost/hook",
    "https://[::ffff:169.254.169.254]/hook", "https://10.0.0.1/hook", "https://2130706433/hook",
])
def test_a_webhook_to_loopback_or_the_metadata_service_is_refused(tmp_path: Path, url: str) -> None:
    """Even with the host on the allow list: loopback and link-local are never a webhook target."""
    service = make_service(tmp_path / "data", env={
        "STORYMEDIA_WEBHOOK_HOSTS": "127.0.0.1,169.254.169.254,localhost,[::1],::1,10.0.0.1,2130706433,"
                                    "::ffff:169.254.169.254"})
    with TestClient(service.app) as client:
        refused = client.post("/v1/webhooks", headers=service.auth("operator"),
                              json={"url": url, "events": ["story.manifest.published"]})
        assert_problem(refused, 422, "invalid", paths=("url",))
        assert "whsec_" not in refused.text
        assert client.get("/v1/webhooks", headers=service.auth("operator")).json()["webhooks"] == []
