"""S3Storage against a real SeaweedFS server: the storage contract, integrity, and failures."""

from __future__ import annotations

import hashlib
import os
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore.exceptions
import httpx
import pytest

from pipeline.errors import StorageError
from pipeline.storage import IMMUTABLE, NO_CACHE, Storage, open_storage
from pipeline.storage.s3 import S3Storage
from tests.servers import SeaweedS3, free_ports

pytestmark = pytest.mark.cluster

MiB = 1 << 20


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def object_key(storage: S3Storage, key: str) -> str:
    return f"{storage.prefix}/{key}"


def test_is_a_storage_and_open_storage_builds_it(s3_server: SeaweedS3, s3_storage: S3Storage) -> None:
    assert isinstance(s3_storage, Storage)
    assert s3_storage.url == f"s3://media/{s3_storage.prefix}"
    opened = open_storage(f"s3://media/{s3_storage.prefix}", endpoint_url=s3_server.endpoint)
    assert isinstance(opened, S3Storage)
    s3_storage.put_bytes("a.txt", b"same store", content_type="text/plain")
    assert opened.get_bytes("a.txt") == b"same store"


def test_put_file_skips_the_same_sha_and_records_headers(s3_server: SeaweedS3, s3_storage: S3Storage,
                                                         tmp_path: Path) -> None:
    raw = s3_server.client()
    source = tmp_path / "a.jpg"
    source.write_bytes(b"jpeg bytes")
    key = "renditions/x/web@1/a.jpg"
    assert s3_storage.put_file(key, source, sha256=sha(b"jpeg bytes"), content_type="image/jpeg") is True

    head = raw.head_object(Bucket="media", Key=object_key(s3_storage, key))
    assert head["ContentType"] == "image/jpeg"
    assert head["CacheControl"] == IMMUTABLE
    assert head["Metadata"] == {"sha256": sha(b"jpeg bytes")}
    info = s3_storage.head(key)
    assert info is not None
    assert (info.key, info.bytes, info.sha256, info.content_type) == (key, 10, sha(b"jpeg bytes"), "image/jpeg")

    # Put different bytes behind its back under the same recorded SHA-256: a skipped put leaves them.
    raw.put_object(Bucket="media", Key=object_key(s3_storage, key), Body=b"marker",
                   Metadata={"sha256": sha(b"jpeg bytes")})
    assert s3_storage.put_file(key, source, sha256=sha(b"jpeg bytes"), content_type="image/jpeg") is False
    assert s3_storage.put_bytes(key, b"jpeg bytes", content_type="image/jpeg") is False
    assert s3_storage.get_bytes(key) == b"marker", "skipped: not uploaded again"

    assert s3_storage.exists(key, sha(b"jpeg bytes"))
    assert not s3_storage.exists(key, sha(b"other"))
    assert s3_storage.put_bytes(key, b"new bytes", content_type="image/jpeg") is True
    assert s3_storage.get_bytes(key) == b"new bytes"


def test_missing_keys(s3_storage: S3Storage, tmp_path: Path) -> None:
    assert s3_storage.head("raw/missing") is None
    assert not s3_storage.exists("raw/missing")
    with pytest.raises(StorageError, match="raw/missing is not in the store"):
        s3_storage.get_bytes("raw/missing")
    with pytest.raises(StorageError, match="raw/missing is not in the store"):
        s3_storage.download("raw/missing", tmp_path / "copy")
    assert list(tmp_path.iterdir()) == [], "a failed download leaves no file behind"
    with pytest.raises(StorageError, match="invalid key"):
        s3_storage.put_bytes("../escape", b"x", content_type="text/plain")


def test_missing_bucket(s3_server: SeaweedS3, s3_env: dict[str, str]) -> None:
    storage = S3Storage("no-such-bucket", endpoint_url=s3_server.endpoint)
    assert storage.head("a.txt") is None, "HEAD cannot tell a missing bucket from a missing key"
    with pytest.raises(StorageError, match="no such bucket no-such-bucket"):
        storage.get_bytes("a.txt")
    with pytest.raises(StorageError, match="no such bucket no-such-bucket"):
        list(storage.list())


def test_multipart_upload_round_trip(s3_server: SeaweedS3, s3_env: dict[str, str],
                                     s3_storage: S3Storage, tmp_path: Path) -> None:
    storage = S3Storage("media", s3_storage.prefix, endpoint_url=s3_server.endpoint,
                        multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    data = os.urandom(12 * MiB + 12345)
    source = tmp_path / "clip.mp4"
    source.write_bytes(data)
    assert storage.put_file("raw/clip.mp4", source, sha256=sha(data), content_type="video/mp4") is True

    head = s3_server.client().head_object(Bucket="media", Key=object_key(storage, "raw/clip.mp4"))
    assert head["ETag"].strip('"').endswith("-3"), "uploaded in three 5 MiB parts"
    info = storage.head("raw/clip.mp4")
    assert info is not None
    assert (info.bytes, info.sha256) == (len(data), sha(data)), "the full-file SHA-256, not a composite"

    storage.download("raw/clip.mp4", tmp_path / "copy.mp4")
    assert (tmp_path / "copy.mp4").read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "copy.mp4"], "no temporary files"
    assert storage.put_file("raw/clip.mp4", source, sha256=sha(data), content_type="video/mp4") is False


def test_replace_list_and_delete(s3_server: SeaweedS3, s3_storage: S3Storage) -> None:
    s3_storage.put_bytes("stories/s/b.json", b"1", content_type="application/json")
    s3_storage.put_bytes("stories/s/a.json", b"1", content_type="application/json")
    s3_storage.put_bytes("stories/t/c.json", b"1", content_type="application/json")
    s3_storage.replace("stories/s/manifest.json", b"{}", content_type="application/json")
    s3_storage.replace("stories/s/manifest.json", b'{"v": 2}', content_type="application/json")
    assert s3_storage.get_bytes("stories/s/manifest.json") == b'{"v": 2}'
    head = s3_server.client().head_object(Bucket="media",
                                          Key=object_key(s3_storage, "stories/s/manifest.json"))
    assert (head["CacheControl"], head["Metadata"]) == (NO_CACHE, {"sha256": sha(b'{"v": 2}')})

    assert list(s3_storage.list("stories/s/")) == ["stories/s/a.json", "stories/s/b.json",
                                                   "stories/s/manifest.json"]
    assert list(s3_storage.list()) == ["stories/s/a.json", "stories/s/b.json",
                                       "stories/s/manifest.json", "stories/t/c.json"]
    assert list(s3_storage.list("raw/")) == []
    other = S3Storage("media", s3_storage.prefix + "-other", endpoint_url=s3_server.endpoint)
    assert list(other.list()) == [], "a neighbouring prefix is not listed"

    s3_storage.delete("stories/s/a.json")
    s3_storage.delete("stories/s/a.json")  # missing: not an error
    assert s3_storage.head("stories/s/a.json") is None
    assert list(s3_storage.list("stories/s/")) == ["stories/s/b.json", "stories/s/manifest.json"]


def test_many_keys_are_paginated(s3_server: SeaweedS3, s3_storage: S3Storage) -> None:
    raw = s3_server.client()
    keys = [f"raw/{i:04d}" for i in range(1003)]
    for key in keys:
        raw.put_object(Bucket="media", Key=object_key(s3_storage, key), Body=b"")
    assert raw.list_objects_v2(Bucket="media", Prefix=s3_storage.prefix + "/")["IsTruncated"]
    assert list(s3_storage.list("raw/")) == keys


def test_presigned_get_and_a_tampered_signature(s3_server: SeaweedS3, s3_env: dict[str, str],
                                                s3_storage: S3Storage) -> None:
    s3_storage.put_bytes("renditions/a.jpg", b"picture", content_type="image/jpeg")
    url = s3_storage.presign("renditions/a.jpg", expires_in=60)
    assert url.startswith(f"{s3_server.endpoint}/media/{s3_storage.prefix}/renditions/a.jpg?")
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"picture"
        assert response.headers["Content-Type"] == "image/jpeg"

    signature = url.rsplit("X-Amz-Signature=", 1)[1][:64]
    tampered = url.replace(signature, signature[:-1] + ("0" if signature[-1] != "0" else "1"))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(tampered, timeout=10)
    assert refused.value.code == 403

    # Signed for the host the browser uses (here "localhost" instead of 127.0.0.1).
    browser_endpoint = s3_server.endpoint.replace("127.0.0.1", "localhost")
    public = S3Storage("media", s3_storage.prefix, endpoint_url=s3_server.endpoint,
                       presign_endpoint_url=browser_endpoint)
    url = public.presign("renditions/a.jpg")
    assert url.startswith(browser_endpoint) and "X-Amz-Expires=3600" in url
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"picture"


def test_wrong_credentials_are_refused(s3_server: SeaweedS3, s3_env: dict[str, str], s3_storage: S3Storage,
                                       monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s3_storage.put_bytes("a.txt", b"x", content_type="text/plain")
    source = tmp_path / "b.txt"
    source.write_bytes(b"y")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    storage = S3Storage("media", s3_storage.prefix, endpoint_url=s3_server.endpoint, max_attempts=1)
    for call in (lambda: storage.head("a.txt"), lambda: storage.get_bytes("a.txt"),
                 lambda: storage.put_bytes("b.txt", b"y", content_type="text/plain"),
                 lambda: storage.put_file("b.txt", source, sha256=sha(b"y"), content_type="text/plain"),
                 lambda: list(storage.list())):
        with pytest.raises(StorageError, match=r"access denied to bucket media.*AWS_SECRET_ACCESS_KEY"):
            call()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "unknown-key")
    storage = S3Storage("media", s3_storage.prefix, endpoint_url=s3_server.endpoint, max_attempts=1)
    with pytest.raises(StorageError, match="access denied to bucket media") as denied:
        storage.replace("a.txt", b"z", content_type="text/plain")
    assert denied.value.retryable and denied.value.__cause__ is not None
    assert s3_storage.get_bytes("a.txt") == b"x"


def test_no_server_is_a_clear_error(s3_env: dict[str, str]) -> None:
    endpoint = f"http://127.0.0.1:{free_ports(1)[0]}"
    storage = S3Storage("media", endpoint_url=endpoint, max_attempts=1, connect_timeout=1)
    with pytest.raises(StorageError, match=rf"cannot reach the object store at {endpoint}/? \(connection refused\)"):
        storage.get_bytes("a.txt")
    with pytest.raises(StorageError, match="cannot reach"):
        storage.head("a.txt")


def test_paused_server_times_out_then_recovers(s3_server: SeaweedS3, s3_env: dict[str, str],
                                               s3_storage: S3Storage) -> None:
    s3_storage.put_bytes("a.txt", b"before", content_type="text/plain")
    storage = S3Storage("media", s3_storage.prefix, endpoint_url=s3_server.endpoint, max_attempts=2,
                        connect_timeout=1, read_timeout=1)
    s3_server.pause()
    try:
        started = time.monotonic()
        with pytest.raises(StorageError, match="did not answer in time"):
            storage.get_bytes("a.txt")
        assert time.monotonic() - started < 10
    finally:
        s3_server.resume()
    assert storage.get_bytes("a.txt") == b"before"
    storage.replace("a.txt", b"after", content_type="text/plain")
    assert s3_storage.get_bytes("a.txt") == b"after"


def on_call(storage: S3Storage, event: str, handler: Callable[..., Any]) -> None:
    """Fault injection: run ``handler`` on a botocore event of this storage's client only."""
    storage._client.meta.events.register(event, handler)


def test_create_writes_a_key_once(s3_server: SeaweedS3, s3_storage: S3Storage) -> None:
    key = "stories/s/manifest.v1.json"
    assert s3_storage.create(key, b'{"v": 1}', content_type="application/json") is True
    assert s3_storage.create(key, b'{"v": 1, "other": true}', content_type="application/json") is False
    assert s3_storage.create(key, b'{"v": 1}', content_type="application/json") is False, \
        "another create of the same bytes is another writer's too"
    assert s3_storage.get_bytes(key) == b'{"v": 1}'
    head = s3_server.client().head_object(Bucket="media", Key=object_key(s3_storage, key))
    assert (head["ContentType"], head["CacheControl"]) == ("application/json", NO_CACHE)
    assert head["Metadata"]["sha256"] == sha(b'{"v": 1}')
    info = s3_storage.head(key)
    assert info is not None and info.sha256 == sha(b'{"v": 1}')
    with pytest.raises(StorageError, match="invalid key"):
        s3_storage.create("../x", b"", content_type="text/plain")


def test_create_races_have_one_winner(s3_storage: S3Storage) -> None:
    """The server decides: 6 threads create one key at once, 3 rounds, exactly one wins each.

    (SeaweedFS 4.48 makes the losers wait for its object lock in steps of about a second.)
    """
    writers = 6
    for round_ in range(3):
        key = f"stories/s/manifest.v{round_}.json"
        start = threading.Barrier(writers)
        won: list[int] = []
        errors: list[BaseException] = []

        def write(i: int, key: str = key, start: threading.Barrier = start,
                  won: list[int] = won, errors: list[BaseException] = errors) -> None:
            start.wait()
            try:
                if s3_storage.create(key, f"writer {i}".encode() * 1000, content_type="text/plain"):
                    won.append(i)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == [] and len(won) == 1, (round_, won, errors)
        assert s3_storage.get_bytes(key) == f"writer {won[0]}".encode() * 1000


def test_a_retried_create_whose_first_attempt_landed_is_ours(s3_storage: S3Storage) -> None:
    """A lost answer: botocore retries a PUT that was stored; the retry meets 412, yet it was ours."""
    retried: list[int] = []

    def lose_the_first_answer(response: Any, attempts: int, caught_exception: Any,
                              **_: Any) -> int | None:
        if attempts == 1 and caught_exception is None and response[0].status_code == 200:
            retried.append(attempts)
            return 0   # retry now
        return None

    on_call(s3_storage, "needs-retry.s3.PutObject", lose_the_first_answer)
    assert s3_storage.create("stories/s/manifest.v1.json", b"mine", content_type="text/plain") is True
    assert retried == [1], "the first attempt landed and was retried"
    assert s3_storage.create("stories/s/manifest.v1.json", b"mine", content_type="text/plain") is False


def test_check_create_only_tells_a_server_that_ignores_the_condition(
        s3_storage: S3Storage, caplog: pytest.LogCaptureFixture) -> None:
    assert s3_storage.check_create_only() is True and s3_storage.atomic_create
    assert list(s3_storage.list()) == [], "the probe is removed"

    def drop_the_condition(request: Any, **_: Any) -> None:   # as a server that ignores it
        del request.headers["If-None-Match"]

    on_call(s3_storage, "request-created.s3.PutObject", drop_the_condition)
    assert s3_storage.check_create_only() is False and not s3_storage.atomic_create
    assert "ignores If-None-Match" in caplog.text
    assert list(s3_storage.list()) == []


def _multipart_storage(s3_server: SeaweedS3, prefix: str, read_timeout: float = 10) -> S3Storage:
    """5 MiB parts, no retries, short timeouts."""
    return S3Storage("media", prefix, endpoint_url=s3_server.endpoint, multipart_threshold=5 * MiB,
                     multipart_chunksize=5 * MiB, max_attempts=1, connect_timeout=1,
                     read_timeout=read_timeout)


class _HeldUpload:
    """Job B: a multipart put in a thread whose parts after the first wait for ``release()``."""

    def __init__(self, storage: S3Storage, key: str, source: Path, sha256: str) -> None:
        self.outcome: list[BaseException | bool] = []
        self._started = threading.Event()
        self._go = threading.Event()

        def hold(params: dict[str, Any], **_: Any) -> None:
            if params["PartNumber"] == 1:
                self._started.set()
            elif not self._go.wait(30):
                raise RuntimeError("never released")

        on_call(storage, "before-parameter-build.s3.UploadPart", hold)

        def upload() -> None:
            try:
                self.outcome.append(storage.put_file(key, source, sha256=sha256,
                                                     content_type="video/mp4"))
            except BaseException as exc:
                self.outcome.append(exc)

        self._thread = threading.Thread(target=upload)
        self._thread.start()
        assert self._started.wait(20), "job B's upload did not start"

    def release(self) -> BaseException | bool:
        self._go.set()
        self._thread.join(60)
        assert not self._thread.is_alive() and len(self.outcome) == 1
        return self.outcome[0]


def _fail_offline(storage: S3Storage, key: str, source: Path, sha256: str) -> list[bool]:
    """Job A: its parts after the first and its aborts fail as if the store were unreachable
    (s3transfer's own abort too); returns a switch: clear it and the store is back."""
    offline = [True]

    def unreachable(params: dict[str, Any], **_: Any) -> None:
        if offline and params.get("PartNumber", 2) >= 2:
            raise botocore.exceptions.EndpointConnectionError(endpoint_url=storage.endpoint,
                                                              error="Connection refused")

    on_call(storage, "before-parameter-build.s3.UploadPart", unreachable)
    on_call(storage, "before-parameter-build.s3.AbortMultipartUpload", unreachable)
    with pytest.raises(StorageError, match="cannot reach the object store"):
        storage.put_file(key, source, sha256=sha256, content_type="video/mp4")
    return offline


def test_a_failed_upload_aborts_only_its_own_not_another_jobs_live_upload(
        s3_server: SeaweedS3, s3_storage: S3Storage, tmp_path: Path) -> None:
    """Two jobs of one story upload the same content-addressed key at once; job A fails.

    The clean-up by prefix that tasks.py did (``abort_incomplete_uploads(prefix)``) kills job B's
    live upload (NoSuchUpload: the asset is rendered again); ``abort_own_uploads()`` does not.
    """
    data = os.urandom(20 * MiB)
    source = tmp_path / "clip.mp4"
    source.write_bytes(data)

    # Today's clean-up: abort by prefix after A failed.
    a = _multipart_storage(s3_server, s3_storage.prefix)
    b = _multipart_storage(s3_server, s3_storage.prefix)
    held = _HeldUpload(b, "renditions/x/old.mp4", source, sha(data))
    offline = _fail_offline(a, "renditions/x/old.mp4", source, sha(data))
    offline.clear()
    assert len(s3_storage.incomplete_uploads("renditions/x/")) == 2, "A's and B's"
    assert a.abort_incomplete_uploads("renditions/x/") == 2, "B's live upload went too"
    killed = held.release()
    assert isinstance(killed, StorageError) and "NoSuchUpload" in str(killed), killed
    assert s3_storage.head("renditions/x/old.mp4") is None

    # Each aborts its own.
    a = _multipart_storage(s3_server, s3_storage.prefix)
    b = _multipart_storage(s3_server, s3_storage.prefix)
    key = "renditions/x/web@1/clip.mp4"
    held = _HeldUpload(b, key, source, sha(data))
    (b_upload,) = b.own_uploads()
    offline = _fail_offline(a, key, source, sha(data))
    (a_upload,) = a.own_uploads("renditions/x/")
    assert a_upload != b_upload and a_upload[0] == b_upload[0] == key
    assert s3_storage.incomplete_uploads() == sorted([a_upload, b_upload])
    assert a.own_uploads("raw/") == []
    assert a.abort_own_uploads() == 0, "the store is still unreachable: nothing aborted"
    assert a.own_uploads() == [a_upload], "kept for a later call"

    offline.clear()
    assert a.abort_own_uploads("raw/") == 0, "another prefix"
    assert a.abort_own_uploads("renditions/x/") == 1
    assert a.own_uploads() == [] and a.abort_own_uploads() == 0
    assert s3_storage.incomplete_uploads() == [b_upload], "B's live upload is untouched"
    assert held.release() is True
    assert b.own_uploads() == [] and s3_storage.incomplete_uploads() == []
    info = s3_storage.head(key)
    assert info is not None and (info.bytes, info.sha256) == (len(data), sha(data))


def test_own_upload_aborted_after_the_server_was_paused(s3_server: SeaweedS3, s3_storage: S3Storage,
                                                        tmp_path: Path) -> None:
    """The store hangs mid-upload: the put fails, s3transfer cannot abort, neither can we until it
    is back; then that upload is aborted and nothing is left.

    The aborts that timed out while the store was paused are served when it resumes, so the upload
    may be gone before the last call; SeaweedFS 4.48 answers an abort of an aborted upload with
    204 (AWS says NoSuchUpload: forgotten, not counted).
    """
    data = os.urandom(20 * MiB)
    source = tmp_path / "clip.mp4"
    source.write_bytes(data)
    storage = _multipart_storage(s3_server, s3_storage.prefix, read_timeout=1)
    paused = threading.Event()

    def pause_at_the_second_part(params: dict[str, Any], **_: Any) -> None:
        if params["PartNumber"] == 2 and not paused.is_set():
            paused.set()
            s3_server.pause()

    on_call(storage, "before-parameter-build.s3.UploadPart", pause_at_the_second_part)
    try:
        started = time.monotonic()
        with pytest.raises(StorageError, match=r"did not answer in time|dropped the connection"):
            storage.put_file("raw/clip.mp4", source, sha256=sha(data), content_type="video/mp4")
        assert paused.is_set() and time.monotonic() - started < 20
        (upload,) = storage.own_uploads()
        assert upload[0] == "raw/clip.mp4"
        assert storage.abort_own_uploads() == 0
        assert storage.own_uploads() == [upload], "kept while the store is paused"
    finally:
        s3_server.resume()
    assert storage.abort_own_uploads() == 1
    assert storage.own_uploads() == [] and s3_storage.incomplete_uploads() == []
    assert s3_storage.head("raw/clip.mp4") is None


def test_incomplete_uploads_are_listed_and_aborted(s3_server: SeaweedS3, s3_storage: S3Storage) -> None:
    raw = s3_server.client()
    key = object_key(s3_storage, "raw/big.mov")
    upload = raw.create_multipart_upload(Bucket="media", Key=key)
    raw.upload_part(Bucket="media", Key=key, UploadId=upload["UploadId"], PartNumber=1,
                    Body=b"x" * (5 * MiB))
    assert s3_storage.incomplete_uploads() == [("raw/big.mov", upload["UploadId"])]
    assert s3_storage.head("raw/big.mov") is None, "an incomplete upload is no object"
    assert list(s3_storage.list()) == []
    assert s3_storage.abort_incomplete_uploads() == 1
    assert s3_storage.incomplete_uploads() == []
    assert s3_storage.abort_incomplete_uploads() == 0


def test_abort_upload_by_id_leaves_other_uploads_of_the_key(s3_server: SeaweedS3, s3_env: dict[str, str],
                                                            s3_storage: S3Storage) -> None:
    """An upload id remembered by an earlier attempt (another process) is aborted, and only it."""
    raw = s3_server.client()
    key = object_key(s3_storage, "renditions/x/a.mp4")
    mine, other = (raw.create_multipart_upload(Bucket="media", Key=key)["UploadId"] for _ in range(2))
    assert s3_storage.abort_upload("renditions/x/a.mp4", mine) is True
    assert s3_storage.incomplete_uploads() == [("renditions/x/a.mp4", other)]
    assert s3_storage.abort_upload("renditions/x/a.mp4", "no-such-upload") is False
    down = S3Storage("media", s3_storage.prefix, endpoint_url=f"http://127.0.0.1:{free_ports(1)[0]}",
                     max_attempts=1, connect_timeout=1)
    with pytest.raises(StorageError, match=r"cannot reach the object store .*connection refused"):
        down.abort_upload("renditions/x/a.mp4", other)
    assert s3_storage.abort_upload("renditions/x/a.mp4", other) is True
    assert s3_storage.incomplete_uploads() == []


def test_ensure_bucket_creates_it_with_the_lifecycle_rule(s3_server: SeaweedS3,
                                                          s3_env: dict[str, str]) -> None:
    storage = S3Storage("fresh-bucket", "p", endpoint_url=s3_server.endpoint)
    storage.ensure_bucket()
    storage.ensure_bucket()  # idempotent
    raw = s3_server.client()
    raw.head_bucket(Bucket="fresh-bucket")
    rules = raw.get_bucket_lifecycle_configuration(Bucket="fresh-bucket")["Rules"]
    assert [r["AbortIncompleteMultipartUpload"] for r in rules] == [{"DaysAfterInitiation": 1}]
    assert storage.atomic_create, "SeaweedFS honours If-None-Match"
    assert list(storage.list()) == [], "the create probe is removed"
    storage.put_bytes("a.txt", b"x", content_type="text/plain")
    assert storage.get_bytes("a.txt") == b"x"


class _Answer:
    """A short-circuited HTTP answer for a ``before-call`` handler: botocore reads only the status."""

    def __init__(self, status: int) -> None:
        self.status_code = status


def refuse(storage: S3Storage, operation: str, code: str, status: int) -> None:
    """Fault injection: ``operation`` of this storage's client is answered with an S3 error."""
    on_call(storage, f"before-call.s3.{operation}", lambda **_: (_Answer(status), {
        "Error": {"Code": code, "Message": f"{code} (injected)"},
        "ResponseMetadata": {"HTTPStatusCode": status}}))


def test_a_refused_lifecycle_rule_is_a_warning_and_a_refused_read_of_it_too(
        s3_server: SeaweedS3, s3_env: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    storage = S3Storage("lifecycle-refused", "p", endpoint_url=s3_server.endpoint)
    refuse(storage, "PutBucketLifecycleConfiguration", "NotImplemented", 501)
    storage.ensure_bucket()
    assert "refused the lifecycle rule that aborts incomplete uploads (NotImplemented)" in caplog.text
    caplog.clear()
    other = S3Storage("lifecycle-refused", "p", endpoint_url=s3_server.endpoint)
    refuse(other, "GetBucketLifecycleConfiguration", "AccessDenied", 403)
    other.ensure_bucket()
    assert "(AccessDenied)" in caplog.text
    assert other.atomic_create, "the rest of the set-up went on"


def test_a_server_without_conditional_writes_says_so(s3_server: SeaweedS3, s3_storage: S3Storage) -> None:
    refuse(s3_storage, "PutObject", "NotImplemented", 501)
    with pytest.raises(StorageError, match="does not support conditional writes") as caught:
        s3_storage.create("stories/s/manifest.v1.json", b"x", content_type="text/plain")
    assert caught.value.code == "no-conditional-writes"
    assert isinstance(caught.value.__cause__, botocore.exceptions.ClientError)
    busy = S3Storage("media", s3_storage.prefix, endpoint_url=s3_server.endpoint, max_attempts=1)
    refuse(busy, "PutObject", "InternalError", 500)
    with pytest.raises(StorageError, match="cannot create stories/s/manifest.v1.json: the object store"
                                           r" at .* is unavailable or overloaded \(InternalError") as busy_error:
        busy.create("stories/s/manifest.v1.json", b"x", content_type="text/plain")
    assert busy_error.value.code == "storage" and busy_error.value.retryable
    assert list(s3_storage.list()) == [], "nothing was written"


def _parts_stored(raw, key: str) -> int:
    uploads = raw.list_multipart_uploads(Bucket="media", Prefix=key).get("Uploads", [])
    if not uploads:
        return 0
    return len(raw.list_parts(Bucket="media", Key=key, UploadId=uploads[0]["UploadId"]).get("Parts", []))


def test_server_killed_during_a_multipart_upload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """kill -9 mid-upload: the put fails; after the restart no object and, once aborted, no upload."""
    with SeaweedS3(tmp_path / "server") as server:
        for name, value in server.env.items():
            monkeypatch.setenv(name, value)
        storage = S3Storage("media", "killed", endpoint_url=server.endpoint, multipart_threshold=5 * MiB,
                            multipart_chunksize=5 * MiB, max_attempts=2, connect_timeout=1,
                            read_timeout=5)
        data = os.urandom(40 * MiB)
        source = tmp_path / "clip.mov"
        source.write_bytes(data)
        outcome: list[BaseException | bool] = []

        def upload() -> None:
            try:
                outcome.append(storage.put_file("raw/clip.mov", source, sha256=sha(data),
                                                content_type="video/quicktime"))
            except BaseException as exc:
                outcome.append(exc)

        raw = server.client(retries={"max_attempts": 1})
        thread = threading.Thread(target=upload)
        thread.start()
        deadline = time.monotonic() + 20
        while not _parts_stored(raw, "killed/raw/clip.mov"):  # kill once a part is on the server
            assert thread.is_alive() and time.monotonic() < deadline, f"not killed mid-upload: {outcome}"
            time.sleep(0.005)
        server.kill()
        started = time.monotonic()
        thread.join(60)
        assert not thread.is_alive()
        assert time.monotonic() - started < 30
        assert len(outcome) == 1 and isinstance(outcome[0], StorageError), outcome
        assert "cannot reach the object store" in str(outcome[0]) or "dropped the connection" in str(outcome[0])

        server.start()
        assert storage.head("raw/clip.mov") is None, "no partial object is visible"
        assert list(storage.list()) == []
        assert [key for key, _ in storage.incomplete_uploads()] == ["raw/clip.mov"], \
            "s3transfer could not abort it: the server was gone"
        assert storage.abort_incomplete_uploads() == 1
        assert storage.incomplete_uploads() == []
        # And the same put works now.
        assert storage.put_file("raw/clip.mov", source, sha256=sha(data), content_type="video/quicktime")
        assert storage.head("raw/clip.mov").sha256 == sha(data)
        # This throwaway server need not stop gracefully: after big uploads weed's volume server
        # can sit in SIGTERM for the whole grace period (see tests/servers.py).
        server.kill()


def test_ensure_bucket_lets_the_pages_read_objects_with_scripts(s3_server: SeaweedS3,
                                                                s3_env: dict[str, str]) -> None:
    """hls.js fetches playlists and segments through presigned URLs from the service's page: the
    bucket must answer that origin's CORS preflight and GETs, and no other origin's; the
    operators' own rules are kept, and ours follows the configured origins."""
    page = "http://127.0.0.1:8000"
    bucket = f"cors-{uuid.uuid4().hex[:12]}"
    store = S3Storage(bucket, endpoint_url=s3_server.endpoint, cors_origins=(page,))
    store.ensure_bucket()
    raw = s3_server.client()
    [rule] = raw.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert rule["AllowedOrigins"] == [page] and sorted(rule["AllowedMethods"]) == ["GET", "HEAD"]

    store.put_bytes("renditions/clip/index.m3u8", b"#EXTM3U\n", content_type="application/vnd.apple.mpegurl")
    url = store.presign("renditions/clip/index.m3u8", expires_in=60)
    preflight = httpx.options(url, headers={"Origin": page, "Access-Control-Request-Method": "GET"}, timeout=10)
    assert preflight.status_code in (200, 204)
    assert preflight.headers.get("access-control-allow-origin") in (page, "*")
    got = httpx.get(url, headers={"Origin": page}, timeout=10)
    assert got.status_code == 200 and got.content == b"#EXTM3U\n"
    assert got.headers.get("access-control-allow-origin") in (page, "*")
    elsewhere = httpx.get(url, headers={"Origin": "https://evil.example"}, timeout=10)
    assert elsewhere.headers.get("access-control-allow-origin") is None

    theirs = {"ID": "operators-own", "AllowedOrigins": ["https://cms.example.vn"], "AllowedMethods": ["GET"]}
    raw.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [theirs, rule]})
    moved = S3Storage(bucket, endpoint_url=s3_server.endpoint, cors_origins=("https://media.example.vn",))
    moved.ensure_bucket()
    rules = {r["ID"]: r for r in raw.get_bucket_cors(Bucket=bucket)["CORSRules"]}
    assert rules["operators-own"]["AllowedOrigins"] == ["https://cms.example.vn"]
    assert rules["storymedia-pages"]["AllowedOrigins"] == ["https://media.example.vn"]


def test_no_cors_origins_set_no_rule(s3_server: SeaweedS3, s3_env: dict[str, str]) -> None:
    bucket = f"nocors-{uuid.uuid4().hex[:12]}"
    S3Storage(bucket, endpoint_url=s3_server.endpoint).ensure_bucket()
    with pytest.raises(botocore.exceptions.ClientError):
        s3_server.client().get_bucket_cors(Bucket=bucket)
