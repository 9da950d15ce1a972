"""Resumable uploads (tus 1.0) at /v1/uploads: the protocol with raw requests (TestClient, and raw
sockets against a real uvicorn where the timing of the body matters), the independent client
``tuspy`` cut off and resumed, both ways of keeping bytes in progress (one appended file, and
parts + tail as in the cluster, here on the local store's part uploads), expiry, and memory."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient
from tusclient.client import TusClient
from tusclient.uploader import Uploader

from api.uploads import Uploads, data_key, record_key, tail_key, uploads_of
from pipeline.model.keys import raw_key
from pipeline.storage import LocalStorage
from tests.api.harness import LiveServer, Service, make_service
from tests.fixtures import photo

STORY = "tai-len-thu-nghiem"
PHOTO = "media/ảnh-01.jpg"
SUBS = "media/phụ-đề.vtt"
TUS = {"Tus-Resumable": "1.0.0"}
STREAM = "application/offset+octet-stream"
MiB = 1 << 20


class Sha256Uploader(Uploader):
    """tuspy's uploader with the checksum this service speaks (sha256)."""

    CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)


def metadata(**values: str) -> str:
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in values.items())


def checksum(data: bytes) -> str:
    return "sha256 " + base64.b64encode(hashlib.sha256(data).digest()).decode()


def photo_bytes(size: tuple[int, int] = (640, 480), seed: int = 5) -> bytes:
    buffer = io.BytesIO()
    photo(size, seed=seed).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def story_json() -> dict[str, Any]:
    return {"story": {"id": STORY, "title": "Tải tệp lên", "byline": "Đình Hà",
                      "published": "2023-09-12T21:15:00+07:00", "presets": ["web"]},
            "assets": [{"file": PHOTO, "caption": "Hội nghị"},
                       {"file": "media/clip.mp4", "subtitles": SUBS}]}


def private(service: Service) -> LocalStorage:
    store = service.app.state.service.backend.private
    assert isinstance(store, LocalStorage)
    return store


def create(client: TestClient, headers: dict[str, str], length: int, file: str = PHOTO,
           story: str = STORY, content: bytes | None = None, **extra: str) -> httpx.Response:
    return client.post("/v1/uploads", content=content, headers={
        **headers, **TUS, "Upload-Length": str(length), "Upload-Metadata": metadata(story=story, file=file),
        **extra})


def patch(client: TestClient, headers: dict[str, str], location: str, data: Any, offset: int,
          **extra: str) -> httpx.Response:
    return client.patch(location, content=data, headers={
        **headers, **TUS, "Upload-Offset": str(offset), "Content-Type": STREAM, **extra})


def head(client: TestClient | httpx.Client, headers: dict[str, str], location: str) -> httpx.Response:
    return client.head(location, headers={**headers, **TUS})


def upload_keys(service: Service) -> list[str]:
    return list(private(service).list("uploads/"))


def parts_left(service: Service) -> list[Path]:
    return list((private(service).root / ".parts").glob("*"))


def spooled(service: Service) -> list[Path]:
    return list(service.config.spool.glob("*")) if service.config.spool.exists() else []


def assert_problem(answer: httpx.Response, status: int, code: str, path: str | None = None) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    body = answer.json()
    assert body["code"] == code and body["status"] == status and body["title_vi"]
    if path is not None:
        assert path in [error["path"] for error in body["errors"]], body


@pytest.fixture
def producer(service: Service, client: TestClient) -> dict[str, str]:
    """The producer's headers, with the story created on their desk."""
    headers = service.auth("producer")
    made = client.post("/v1/stories", headers=headers, json=story_json())
    assert made.status_code == 201, made.text
    return headers


def use_parts(service: Service) -> None:
    """Keep bytes in progress as the cluster does on S3 (1 MiB parts and a tail object), here on
    the local store's part uploads."""
    svc = service.app.state.service
    svc.extras["uploads"] = Uploads(svc.backend.private, svc.config.spool, svc.config.upload_expiry,
                                    append=False, part_bytes=MiB)


@pytest.fixture(params=["append", "parts"])
def mode(request: pytest.FixtureRequest, service: Service) -> str:
    """Both ways of keeping bytes in progress: one appended file (embedded), and parts + tail."""
    if request.param == "parts":
        use_parts(service)
    return str(request.param)


# -- the protocol's headers ------------------------------------------------------------------------

def test_options_says_what_the_server_supports_without_a_token(client: TestClient) -> None:
    answer = client.options("/v1/uploads")
    assert answer.status_code == 204
    assert answer.headers["tus-version"] == "1.0.0"
    assert set(answer.headers["tus-extension"].split(",")) == {
        "creation", "creation-with-upload", "termination", "checksum", "expiration"}
    assert answer.headers["tus-max-size"] == str(20 * 1024**3)   # the presets' av.max_bytes
    assert answer.headers["tus-checksum-algorithm"] == "sha256"
    exposed = {name.strip().lower() for name in answer.headers["access-control-expose-headers"].split(",")}
    assert {"location", "upload-offset", "upload-length", "tus-resumable", "tus-version", "tus-extension",
            "tus-max-size", "upload-expires"} <= exposed


def test_tus_max_size_follows_the_setting(tmp_path: Path) -> None:
    service = make_service(tmp_path / "data", env={"STORYMEDIA_UPLOAD_MAX_BYTES": "5000"})
    with TestClient(service.app) as client:
        assert client.options("/v1/uploads").headers["tus-max-size"] == "5000"


def test_without_or_with_another_tus_version_is_412(client: TestClient, producer: dict[str, str]) -> None:
    for version in (None, "0.2.2"):
        headers = {**producer, "Upload-Length": "10", "Upload-Metadata": metadata(story=STORY, file=PHOTO)}
        if version:
            headers["Tus-Resumable"] = version
        answer = client.post("/v1/uploads", headers=headers)
        assert_problem(answer, 412, "precondition-failed", "Tus-Resumable")
        assert answer.headers["tus-version"] == "1.0.0"
    created = create(client, producer, 10)
    assert created.status_code == 201
    answer = client.head(created.headers["location"], headers=producer)
    assert answer.status_code == 412


def test_create_head_and_patch_answer_the_protocols_headers(client: TestClient, producer: dict[str, str],
                                                            mode: str) -> None:
    data = photo_bytes()
    created = create(client, producer, len(data))
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    assert location.startswith("/v1/uploads/") and len(location.rsplit("/", 1)[1]) == 32
    assert created.headers["tus-resumable"] == "1.0.0"
    assert created.headers["upload-expires"].endswith(" GMT")
    state = head(client, producer, location)
    assert state.status_code == 200
    assert state.headers["upload-offset"] == "0"
    assert state.headers["upload-length"] == str(len(data))
    assert state.headers["upload-metadata"] == metadata(story=STORY, file=PHOTO)
    assert state.headers["cache-control"] == "no-store"
    assert state.headers["upload-expires"] == created.headers["upload-expires"]
    first = patch(client, producer, location, data[:1000], 0)
    assert first.status_code == 204, first.text
    assert first.headers["upload-offset"] == "1000"
    assert head(client, producer, location).headers["upload-offset"] == "1000"
    last = patch(client, producer, location, data[1000:], 1000)
    assert last.status_code == 204, last.text
    sha = hashlib.sha256(data).hexdigest()
    assert last.headers["upload-offset"] == str(len(data))
    assert last.headers["upload-sha256"] == sha
    assert head(client, producer, location).headers["upload-offset"] == str(len(data))


# -- refusals --------------------------------------------------------------------------------------

def test_a_declared_length_above_the_limit_is_413_and_nothing_is_made(
        client: TestClient, producer: dict[str, str], service: Service) -> None:
    answer = client.post("/v1/uploads", content=b"tiny", headers={
        **producer, **TUS, "Upload-Length": str(20 * 1024**3 + 1), "Content-Type": STREAM,
        "Upload-Metadata": metadata(story=STORY, file=PHOTO)})
    assert_problem(answer, 413, "too-large", "Upload-Length")
    assert upload_keys(service) == [] and spooled(service) == []


def test_a_subtitles_file_has_the_subtitles_limit(client: TestClient, producer: dict[str, str]) -> None:
    answer = create(client, producer, 2 * MiB + 1, file=SUBS)
    assert_problem(answer, 413, "too-large", "Upload-Length")
    assert create(client, producer, 2 * MiB, file=SUBS).status_code == 201


def raw_exchange(server: LiveServer, head_lines: list[str], body: bytes = b"",
                 wait: float = 10.0) -> tuple[int, float]:
    """Send a request's head (and ``body``, the start of a much longer declared body), then wait for
    the answer without sending more: its status, and the seconds it took."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait) as sock:
        sock.sendall(("\r\n".join(head_lines) + "\r\n\r\n").encode("utf-8"))
        sock.sendall(body)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1]), time.monotonic() - started


def auth_lines(headers: dict[str, str]) -> list[str]:
    return [f"{key}: {value}" for key, value in headers.items()]


def test_a_real_server_refuses_a_huge_declared_body_at_once(live: LiveServer, service: Service,
                                                            producer: dict[str, str]) -> None:
    """10 GiB declared, 64 KiB sent: the 413 comes back without the server waiting for the rest."""
    lines = ["POST /v1/uploads HTTP/1.1", "Host: 127.0.0.1", "Tus-Resumable: 1.0.0",
             f"Upload-Length: {30 * 1024**3}", f"Upload-Metadata: {metadata(story=STORY, file=PHOTO)}",
             f"Content-Type: {STREAM}", f"Content-Length: {30 * 1024**3}", *auth_lines(producer)]
    status, seconds = raw_exchange(live, lines, os.urandom(64 * 1024))
    assert status == 413 and seconds < 5
    assert upload_keys(service) == []
    created = httpx.post(f"{live.url}/v1/uploads", headers={
        **producer, **TUS, "Upload-Length": "1000", "Upload-Metadata": metadata(story=STORY, file=PHOTO)})
    location = created.headers["location"]
    lines = [f"PATCH {location} HTTP/1.1", "Host: 127.0.0.1", "Tus-Resumable: 1.0.0", "Upload-Offset: 0",
             f"Content-Type: {STREAM}", f"Content-Length: {10 * 1024**3}", *auth_lines(producer)]
    status, seconds = raw_exchange(live, lines, os.urandom(64 * 1024))
    assert status == 413 and seconds < 5
    assert httpx.head(f"{live.url}{location}", headers={**producer, **TUS}).headers["upload-offset"] == "0"


def test_a_wrong_checksum_is_460_and_keeps_nothing_of_the_request(
        client: TestClient, producer: dict[str, str], service: Service, mode: str) -> None:
    data = os.urandom(3 * MiB + 12345)
    location = create(client, producer, len(data)).headers["location"]
    first = data[:MiB + 100]
    assert patch(client, producer, location, first, 0, **{"Upload-Checksum": checksum(first)}).status_code == 204
    before = {key: private(service).get_bytes(key) for key in upload_keys(service)}
    wrong = patch(client, producer, location, data[len(first):], len(first),
                  **{"Upload-Checksum": checksum(b"something else")})
    assert_problem(wrong, 460, "checksum-mismatch", "Upload-Checksum")
    assert head(client, producer, location).headers["upload-offset"] == str(len(first))
    assert {key: private(service).get_bytes(key) for key in upload_keys(service)} == before
    assert spooled(service) == []
    rest = data[len(first):]
    done = patch(client, producer, location, rest, len(first), **{"Upload-Checksum": checksum(rest)})
    assert done.status_code == 204, done.text
    sha = hashlib.sha256(data).hexdigest()
    assert private(service).get_bytes(raw_key(sha)) == data


def test_a_checksum_with_another_algorithm_or_no_digest_is_400(client: TestClient, producer: dict[str, str]) -> None:
    location = create(client, producer, 10).headers["location"]
    for value in ("md5 " + base64.b64encode(hashlib.md5(b"0123456789").digest()).decode(), "sha256 !!!"):
        answer = patch(client, producer, location, b"0123456789", 0, **{"Upload-Checksum": value})
        assert_problem(answer, 400, "bad-request", "Upload-Checksum")
    assert head(client, producer, location).headers["upload-offset"] == "0"


def test_a_wrong_checksum_on_creation_with_upload_leaves_no_upload(
        client: TestClient, producer: dict[str, str], service: Service) -> None:
    answer = create(client, producer, 100, content=b"x" * 40, **{
        "Content-Type": STREAM, "Upload-Checksum": checksum(b"y" * 40)})
    assert_problem(answer, 460, "checksum-mismatch")
    assert upload_keys(service) == []


def test_creation_with_upload_keeps_the_first_bytes(client: TestClient, producer: dict[str, str],
                                                    mode: str) -> None:
    data = photo_bytes()
    answer = create(client, producer, len(data), content=data[:5000], **{
        "Content-Type": STREAM, "Upload-Checksum": checksum(data[:5000])})
    assert answer.status_code == 201, answer.text
    assert answer.headers["upload-offset"] == "5000"
    rest = patch(client, producer, answer.headers["location"], data[5000:], 5000)
    assert rest.status_code == 204 and rest.headers["upload-sha256"] == hashlib.sha256(data).hexdigest()


def test_a_wrong_offset_is_409_with_the_right_one(client: TestClient, producer: dict[str, str]) -> None:
    location = create(client, producer, 100).headers["location"]
    assert patch(client, producer, location, b"a" * 10, 0).status_code == 204
    for offset in (0, 5, 20):
        answer = patch(client, producer, location, b"b" * 10, offset)
        assert_problem(answer, 409, "conflict", "Upload-Offset")
        assert answer.headers["upload-offset"] == "10"
    assert head(client, producer, location).headers["upload-offset"] == "10"


def test_a_body_past_the_length_is_413_and_not_kept(client: TestClient, producer: dict[str, str],
                                                    mode: str) -> None:
    location = create(client, producer, 3 * MiB).headers["location"]
    assert patch(client, producer, location, b"a" * 10, 0).status_code == 204
    declared = patch(client, producer, location, b"b" * (3 * MiB), 10)
    assert_problem(declared, 413, "too-large", "Content-Length")

    def chunked() -> Iterator[bytes]:   # no Content-Length: found out while reading
        for _ in range(4):
            yield b"c" * MiB

    streamed = patch(client, producer, location, chunked(), 10)
    assert_problem(streamed, 413, "too-large")
    assert head(client, producer, location).headers["upload-offset"] == "10"


def test_bytes_in_another_content_type_are_415(client: TestClient, producer: dict[str, str]) -> None:
    location = create(client, producer, 100).headers["location"]
    answer = client.patch(location, content=b"a" * 10, headers={
        **producer, **TUS, "Upload-Offset": "0", "Content-Type": "application/octet-stream"})
    assert_problem(answer, 415, "unsupported-media-type", "Content-Type")


def test_an_unknown_story_is_404(client: TestClient, producer: dict[str, str], service: Service) -> None:
    assert_problem(create(client, producer, 100, story="khong-co-tin-nay"), 404, "not-found")
    assert_problem(create(client, producer, 100, story="../../etc"), 404, "not-found")
    assert upload_keys(service) == []


@pytest.mark.parametrize("name", ["media/khac.jpg", "../x", "/etc/passwd", "media\\ảnh-01.jpg",
                                  "media/../media/ảnh-01.jpg", "media/ảnh-01.jpg\x00"])
def test_a_file_that_is_not_the_storys_is_422(client: TestClient, producer: dict[str, str],
                                              service: Service, name: str) -> None:
    assert_problem(create(client, producer, 100, file=name), 422, "invalid", "Upload-Metadata.file")
    assert upload_keys(service) == []


def test_the_file_name_is_compared_after_nfc_and_filename_is_accepted(
        client: TestClient, producer: dict[str, str]) -> None:
    import unicodedata

    decomposed = unicodedata.normalize("NFD", PHOTO)
    assert decomposed != PHOTO
    assert create(client, producer, 100, file=decomposed).status_code == 201
    answer = client.post("/v1/uploads", headers={**producer, **TUS, "Upload-Length": "100",
                                                 "Upload-Metadata": metadata(story=STORY, filename=PHOTO)})
    assert answer.status_code == 201, answer.text


@pytest.mark.parametrize("header", [None, "", "story", "story !!!,file eA==", "story eA==,story eA==",
                                    metadata(file=PHOTO), metadata(story=STORY)])
def test_metadata_that_does_not_name_story_and_file_is_422(client: TestClient, producer: dict[str, str],
                                                           header: str | None) -> None:
    headers = {**producer, **TUS, "Upload-Length": "100"}
    if header is not None:
        headers["Upload-Metadata"] = header
    answer = client.post("/v1/uploads", headers=headers)
    assert_problem(answer, 422, "invalid")
    assert all(e["path"].startswith("Upload-Metadata") for e in answer.json()["errors"])


def test_the_length_must_be_a_positive_whole_number(client: TestClient, producer: dict[str, str]) -> None:
    for value, status in (("abc", 400), ("-5", 400), ("1e9", 400), ("0", 422)):
        answer = create(client, producer, 1, **{"Upload-Length": value})
        assert answer.status_code == status, (value, answer.text)
        assert "Upload-Length" in [e["path"] for e in answer.json()["errors"]]
    answer = client.post("/v1/uploads", headers={**producer, **TUS, "Upload-Defer-Length": "1",
                                                 "Upload-Metadata": metadata(story=STORY, file=PHOTO)})
    assert_problem(answer, 400, "bad-request", "Upload-Length")


def test_another_desks_producer_and_an_editor_are_403(client: TestClient, producer: dict[str, str],
                                                      service: Service) -> None:
    for who in ("producer-kinh-te", "editor"):
        assert_problem(create(client, service.auth(who), 100), 403, "forbidden")
    location = create(client, producer, 100).headers["location"]
    for who in ("producer-kinh-te", "editor"):
        headers = service.auth(who)
        assert head(client, headers, location).status_code == 403
        assert_problem(patch(client, headers, location, b"a" * 10, 0), 403, "forbidden")
        assert_problem(client.delete(location, headers={**headers, **TUS}), 403, "forbidden")
    assert head(client, service.auth("operator"), location).status_code == 200
    assert patch(client, service.auth("operator"), location, b"a" * 10, 0).status_code == 204
    assert client.head(location, headers=TUS).status_code == 401


def test_an_unknown_upload_is_404(client: TestClient, producer: dict[str, str]) -> None:
    for upload_id in ("0" * 32, "not-an-id", "A" * 32):
        assert head(client, producer, f"/v1/uploads/{upload_id}").status_code == 404
        assert_problem(patch(client, producer, f"/v1/uploads/{upload_id}", b"a", 0), 404, "not-found")


# -- termination and expiry ----------------------------------------------------------------------

def test_delete_removes_everything_of_the_upload(client: TestClient, producer: dict[str, str],
                                                 service: Service, mode: str) -> None:
    data = os.urandom(2 * MiB + 500)
    location = create(client, producer, len(data)).headers["location"]
    assert patch(client, producer, location, data[:-1000], 0).status_code == 204
    assert upload_keys(service) and (mode == "append" or parts_left(service))
    gone = client.delete(location, headers={**producer, **TUS})
    assert gone.status_code == 204 and gone.headers["tus-resumable"] == "1.0.0"
    assert upload_keys(service) == [] and parts_left(service) == [] and spooled(service) == []
    assert list((private(service).root / "uploads").iterdir()) == []
    assert head(client, producer, location).status_code == 404
    assert client.delete(location, headers={**producer, **TUS}).status_code == 404


def test_an_expired_upload_is_gone_and_the_cleaner_removes_it(tmp_path: Path) -> None:
    service = make_service(tmp_path / "data", env={"STORYMEDIA_UPLOAD_EXPIRY": "3"})
    client = TestClient(service.app)    # no lifespan: no background cleaner racing this test
    producer = service.auth("producer")
    assert client.post("/v1/stories", headers=producer, json=story_json()).status_code == 201
    svc = service.app.state.service
    for append in (True, False):
        svc.extras["uploads"] = Uploads(svc.backend.private, svc.config.spool, 3, append=append,
                                        part_bytes=MiB)
        first = create(client, producer, 3 * MiB).headers["location"]
        second = create(client, producer, 3 * MiB).headers["location"]
        for location in (first, second):
            assert patch(client, producer, location, os.urandom(MiB + 10), 0).status_code == 204
        assert upload_keys(service)
        time.sleep(3.2)   # 3 s: a loaded CI machine took over 1 s for the PATCHes above
        assert_problem(patch(client, producer, first, b"a", MiB + 10), 410, "gone")
        assert uploads_of(svc).clean_expired() == 1   # the second: the 410 removed the first
        assert upload_keys(service) == [] and parts_left(service) == []
        assert head(client, producer, second).status_code == 404


def test_the_services_cleaner_runs_in_the_background(tmp_path: Path) -> None:
    service = make_service(tmp_path / "data", env={"STORYMEDIA_UPLOAD_EXPIRY": "1"})
    with TestClient(service.app) as client:
        producer = service.auth("producer")
        assert client.post("/v1/stories", headers=producer, json=story_json()).status_code == 201
        location = create(client, producer, 100).headers["location"]
        # 410 when the machine was slow enough for the second to pass already: the cleaner's work
        # is what this test is about.
        assert patch(client, producer, location, b"a" * 10, 0).status_code in (204, 410)
        deadline = time.monotonic() + 10
        while upload_keys(service) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert upload_keys(service) == []


# -- finishing ---------------------------------------------------------------------------------------

def test_a_finished_upload_is_the_storys_raw(client: TestClient, producer: dict[str, str],
                                             service: Service, mode: str) -> None:
    data = os.urandom(5 * MiB + 7)
    location = create(client, producer, len(data)).headers["location"]
    offset = 0
    for size in (300_000, 2 * MiB + 5, 3, 3 * MiB):   # across parts and tails
        piece = data[offset:offset + size]
        answer = patch(client, producer, location, piece, offset)
        assert answer.status_code == 204, answer.text
        offset += len(piece)
        if mode == "parts" and offset < len(data):
            upload = uploads_of(service.app.state.service).read(location.rsplit("/", 1)[1])
            assert upload is not None
            assert upload.sent_bytes + upload.tail_bytes == offset and upload.tail_bytes < MiB + MiB
    sha = hashlib.sha256(data).hexdigest()
    store = private(service)
    assert store.get_bytes(raw_key(sha)) == data
    info = client.get(f"/v1/stories/{STORY}", headers=producer).json()
    assert {"file": PHOTO, "uploaded": True, "sha256": sha, "bytes": len(data)} in info["files"]
    upload_id = location.rsplit("/", 1)[1]
    assert upload_keys(service) == [record_key(upload_id)]   # the record, marked done, until it expires
    assert parts_left(service) == [] and spooled(service) == []


def test_another_replica_continues_and_reads_the_bytes_back_for_the_hash(
        client: TestClient, producer: dict[str, str], service: Service, mode: str) -> None:
    """A second Uploads on the same store (another replica, or this one after a restart) has no
    running hash: it finishes by reading the stored bytes back."""
    data = os.urandom(3 * MiB + 99)
    location = create(client, producer, len(data)).headers["location"]
    assert patch(client, producer, location, data[:MiB + 500], 0).status_code == 204
    svc = service.app.state.service
    svc.extras["uploads"] = Uploads(svc.backend.private, svc.config.spool, svc.config.upload_expiry,
                                    append=mode == "append", part_bytes=MiB)
    done = patch(client, producer, location, data[MiB + 500:], MiB + 500)
    assert done.status_code == 204, done.text
    sha = hashlib.sha256(data).hexdigest()
    assert done.headers["upload-sha256"] == sha
    assert private(service).get_bytes(raw_key(sha)) == data


def test_a_lost_tail_sends_the_client_back_to_the_last_part(client: TestClient, producer: dict[str, str],
                                                            service: Service) -> None:
    use_parts(service)
    data = os.urandom(3 * MiB)
    location = create(client, producer, len(data)).headers["location"]
    upload_id = location.rsplit("/", 1)[1]
    assert patch(client, producer, location, data[:MiB + 300], 0).status_code == 204   # a part and 300 bytes
    assert patch(client, producer, location, data[MiB + 300:MiB + 900], MiB + 300).status_code == 204
    assert private(service).get_bytes(tail_key(upload_id)) == data[MiB:MiB + 900]
    private(service).replace(tail_key(upload_id), b"damaged", content_type="application/octet-stream")
    answer = patch(client, producer, location, data[MiB + 900:], MiB + 900)
    assert_problem(answer, 409, "conflict")
    part = int(answer.headers["upload-offset"])
    assert part == MiB and head(client, producer, location).headers["upload-offset"] == str(part)
    done = patch(client, producer, location, data[part:], part)
    assert done.status_code == 204 and done.headers["upload-sha256"] == hashlib.sha256(data).hexdigest()


def test_bytes_written_past_the_record_by_a_cut_request_are_not_counted(
        client: TestClient, producer: dict[str, str], service: Service) -> None:
    data = os.urandom(4000)
    location = create(client, producer, len(data)).headers["location"]
    upload_id = location.rsplit("/", 1)[1]
    assert patch(client, producer, location, data[:1000], 0).status_code == 204
    with (private(service).root / data_key(upload_id)).open("ab") as handle:
        handle.write(b"garbage a crash left")
    assert patch(client, producer, location, data[1000:], 1000).status_code == 204
    assert private(service).get_bytes(raw_key(hashlib.sha256(data).hexdigest())) == data


# -- a real server: tuspy, cut connections, parallel requests, memory ---------------------------------

def test_tuspy_uploads_a_photo_cut_off_and_resumed(live: LiveServer, service: Service,
                                                   producer: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "anh.jpg"
    photo((2400, 1600), seed=11).save(path, "JPEG", quality=95)
    size = path.stat().st_size
    assert size > 600_000
    client = TusClient(f"{live.url}/v1/uploads", headers=dict(producer))
    with path.open("rb") as stream:
        first = Sha256Uploader(file_stream=stream, client=client, chunk_size=128 * 1024, upload_checksum=True,
                               metadata={"story": STORY, "file": PHOTO})
        first.upload(stop_at=3 * 128 * 1024)    # three chunks, then the producer's laptop sleeps
        url = first.url
    assert url is not None
    state = httpx.head(url, headers={**producer, **TUS})
    assert state.headers["upload-offset"] == str(3 * 128 * 1024)
    with path.open("rb") as stream:
        second = Sha256Uploader(file_stream=stream, client=client, url=url, chunk_size=256 * 1024,
                                upload_checksum=True, metadata={"story": STORY, "file": PHOTO})
        assert second.offset == 3 * 128 * 1024   # resumed from the server's Upload-Offset
        second.upload()
    assert second.offset == size
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert private(service).get_bytes(raw_key(sha)) == path.read_bytes()
    story = httpx.get(f"{live.url}/v1/stories/{STORY}", headers=producer).json()
    assert {"file": PHOTO, "uploaded": True, "sha256": sha, "bytes": size} in story["files"]


def open_patch(server: LiveServer, headers: dict[str, str], location: str, declared: int,
               sent: bytes, offset: int = 0) -> socket.socket:
    """A PATCH declaring ``declared`` bytes of which only ``sent`` go out (the socket stays open)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    lines = [f"PATCH {location} HTTP/1.1", "Host: 127.0.0.1", "Tus-Resumable: 1.0.0",
             f"Upload-Offset: {offset}", f"Content-Type: {STREAM}", f"Content-Length: {declared}",
             *auth_lines(headers)]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + sent)
    return sock


def eventually(condition: Callable[[], bool], timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def settled(http: httpx.Client, location: str, headers: dict[str, str], want: int) -> int:
    deadline = time.monotonic() + 20
    offset = -1
    while time.monotonic() < deadline:
        offset = int(http.head(location, headers={**headers, **TUS}).headers["upload-offset"])
        if offset == want:
            break
        time.sleep(0.1)
    return offset


def test_a_dropped_connection_keeps_what_arrived_and_a_parallel_patch_is_409(
        live: LiveServer, service: Service, producer: dict[str, str], mode: str) -> None:
    data = os.urandom(4 * MiB)
    with httpx.Client(base_url=live.url, timeout=30) as http:
        location = http.post("/v1/uploads", headers={**producer, **TUS, "Upload-Length": str(len(data)),
                                                      "Upload-Metadata": metadata(story=STORY, file=PHOTO)}
                             ).headers["location"]
        sent = data[:MiB + MiB // 2]
        sock = open_patch(live, producer, location, len(data), sent)
        time.sleep(1.0)
        parallel = http.patch(location, content=b"x" * 10, headers={
            **producer, **TUS, "Upload-Offset": "0", "Content-Type": STREAM})
        assert_problem(parallel, 409, "conflict")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()    # the train goes into a tunnel: a reset, not a goodbye
        assert settled(http, location, producer, len(sent)) == len(sent)
        assert eventually(lambda: spooled(service) == [])
        rest = http.patch(location, content=data[len(sent):], headers={
            **producer, **TUS, "Upload-Offset": str(len(sent)), "Content-Type": STREAM})
        assert rest.status_code == 204, rest.text
        assert rest.headers["upload-sha256"] == hashlib.sha256(data).hexdigest()


def test_a_dropped_connection_with_a_checksum_keeps_nothing(live: LiveServer, service: Service,
                                                            producer: dict[str, str], mode: str) -> None:
    data = os.urandom(3 * MiB)
    with httpx.Client(base_url=live.url, timeout=30) as http:
        location = http.post("/v1/uploads", headers={**producer, **TUS, "Upload-Length": str(len(data)),
                                                      "Upload-Metadata": metadata(story=STORY, file=PHOTO)}
                             ).headers["location"]
        sock = socket.create_connection(("127.0.0.1", live.port), timeout=30)
        lines = [f"PATCH {location} HTTP/1.1", "Host: 127.0.0.1", "Tus-Resumable: 1.0.0", "Upload-Offset: 0",
                 f"Content-Type: {STREAM}", f"Content-Length: {len(data)}",
                 f"Upload-Checksum: {checksum(data)}", *auth_lines(producer)]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + data[:2 * MiB])
        time.sleep(1.0)
        sock.close()
        upload_id = location.rsplit("/", 1)[1]
        uploads = uploads_of(service.app.state.service)
        assert eventually(lambda: not uploads.busy(upload_id)), "the request saw the client go"
        assert eventually(lambda: spooled(service) == [])
        assert http.head(location, headers={**producer, **TUS}).headers["upload-offset"] == "0"
        if mode == "append":
            assert private(service).get_bytes(data_key(upload_id)) == b""
        else:
            assert upload_keys(service) == [record_key(upload_id)] and parts_left(service) != []


def test_a_200_mb_upload_does_not_grow_the_process(live: LiveServer, service: Service,
                                                   producer: dict[str, str], tmp_path: Path) -> None:
    """The service streams: the whole process (server and client) stays within ~60 MB of where it
    started while 200 MB go through one PATCH."""
    path = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        for _ in range(200):
            block = os.urandom(MiB)
            digest.update(block)
            handle.write(block)
    size = path.stat().st_size
    process = psutil.Process()
    peak = [process.memory_info().rss]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.02)

    def body() -> Iterator[bytes]:
        with path.open("rb") as source:
            while block := source.read(256 * 1024):
                yield block

    with httpx.Client(base_url=live.url, timeout=120) as http:
        location = http.post("/v1/uploads", headers={**producer, **TUS, "Upload-Length": str(size),
                                                      "Upload-Metadata": metadata(story=STORY, file="media/clip.mp4")}
                             ).headers["location"]
        start = process.memory_info().rss
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            answer = http.patch(location, content=body(), headers={
                **producer, **TUS, "Upload-Offset": "0", "Content-Type": STREAM, "Content-Length": str(size)})
        finally:
            stop.set()
            watcher.join()
    assert answer.status_code == 204, answer.text
    assert answer.headers["upload-sha256"] == digest.hexdigest()
    assert private(service).exists(raw_key(digest.hexdigest()))
    assert peak[0] - start < 60 * MiB, f"grew by {(peak[0] - start) / MiB:.0f} MiB"


def test_a_location_is_relative_and_tuspy_joins_it(live: LiveServer, producer: dict[str, str]) -> None:
    client = TusClient(f"{live.url}/v1/uploads", headers=dict(producer))
    uploader = Sha256Uploader(file_stream=io.BytesIO(b"WEBVTT\n\n"), client=client,
                              metadata={"story": STORY, "file": SUBS})
    url = uploader.create_url()
    assert urlsplit(url).netloc == urlsplit(live.url).netloc and url.startswith(f"{live.url}/v1/uploads/")


# -- a declared SHA-256 ----------------------------------------------------------------------------

def create_declared(client: TestClient, headers: dict[str, str], data: bytes, sha: str) -> httpx.Response:
    return client.post("/v1/uploads", headers={
        **headers, **TUS, "Upload-Length": str(len(data)),
        "Upload-Metadata": metadata(story=STORY, file=PHOTO, sha256=sha)})


def test_a_declared_sha256_that_matches_stores_the_raw(client: TestClient, producer: dict[str, str],
                                                       service: Service, mode: str) -> None:
    data = os.urandom(2 * MiB + 77)
    sha = hashlib.sha256(data).hexdigest()
    location = create_declared(client, producer, data, sha.upper()).headers["location"]
    assert patch(client, producer, location, data[:MiB + 5], 0).status_code == 204
    done = patch(client, producer, location, data[MiB + 5:], MiB + 5)
    assert done.status_code == 204, done.text
    assert done.headers["upload-sha256"] == sha
    assert private(service).get_bytes(raw_key(sha)) == data
    assert parts_left(service) == [] and spooled(service) == []
    assert not [key for key in upload_keys(service) if not key.endswith(".json")]


def test_a_declared_sha256_that_does_not_match_is_460_and_keeps_nothing(
        client: TestClient, producer: dict[str, str], service: Service, mode: str) -> None:
    data = os.urandom(2 * MiB + 77)
    declared = hashlib.sha256(b"another file").hexdigest()
    location = create_declared(client, producer, data, declared).headers["location"]
    assert patch(client, producer, location, data[:MiB], 0).status_code == 204
    refused = patch(client, producer, location, data[MiB:], MiB)
    assert_problem(refused, 460, "checksum-mismatch", "Upload-Metadata.sha256")
    assert "nothing of it was kept" in refused.json()["detail"]
    assert head(client, producer, location).status_code == 404
    assert upload_keys(service) == [] and parts_left(service) == [] and spooled(service) == []
    assert not private(service).exists(raw_key(declared))
    assert not private(service).exists(raw_key(hashlib.sha256(data).hexdigest()))
    assert client.get(f"/v1/stories/{STORY}", headers=producer).json()["files"][0]["uploaded"] is False


def test_a_declared_sha256_that_is_not_64_hex_digits_is_422(client: TestClient, producer: dict[str, str],
                                                            service: Service) -> None:
    for bad in ("abc", "z" * 64, "0" * 63):
        answer = create_declared(client, producer, b"0123456789", bad)
        assert_problem(answer, 422, "invalid", "Upload-Metadata.sha256")
    assert upload_keys(service) == []
