"""Part uploads (pipeline.storage.base.PartUploads) against a real SeaweedFS S3 server, next to the
local store's, and the service's tus uploads (api.uploads) kept in S3 the way the cluster keeps
them: 16 MiB parts of a multipart upload, several on their way at once, the tail as its own object, continued by another replica,
assembled, copied server-side to ``raw/<sha>``, and nothing left behind."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import threading
import time
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.requests import ClientDisconnect

from api import records
from api.problems import Problem
from api.uploads import PART_BYTES, PARTS_IN_FLIGHT, Upload, Uploads, record_key, tail_key
from pipeline.errors import StorageError
from pipeline.model.keys import raw_key
from pipeline.storage import IMMUTABLE, LocalStorage, Storage
from pipeline.storage.base import Appending, PartUploads, UploadedPart
from pipeline.storage.s3 import S3Storage
from tests.servers import SeaweedS3

pytestmark = pytest.mark.cluster

MiB = 1 << 20


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["s3", "local"])
def parts_store(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "store")
    found: S3Storage = request.getfixturevalue("s3_storage")
    return found


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def incomplete(store: Storage, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(store, S3Storage):
        return store.incomplete_uploads(prefix)
    assert isinstance(store, LocalStorage)
    return [(path.name, "") for path in (store.root / ".parts").glob("*")]


# -- the capability ----------------------------------------------------------------------------------

def test_parts_sent_in_turn_are_assembled_in_order(parts_store: Storage, tmp_path: Path) -> None:
    assert isinstance(parts_store, PartUploads)
    first, second = os.urandom(6 * MiB), os.urandom(MiB + 17)
    upload_id = parts_store.start_parts("uploads/a.data")
    one = parts_store.put_part("uploads/a.data", upload_id, 1, write(tmp_path / "1", first))
    parts_store.put_part("uploads/a.data", upload_id, 2, write(tmp_path / "2", b"sent first, then again"))
    two = parts_store.put_part("uploads/a.data", upload_id, 2, write(tmp_path / "2", second))
    assert not parts_store.exists("uploads/a.data"), "nothing visible before it is assembled"
    assert [key for key in parts_store.list("") if not key.startswith(".")] == []
    parts_store.complete_parts("uploads/a.data", upload_id, [one, two])
    assert parts_store.get_bytes("uploads/a.data") == first + second
    assert b"".join(parts_store.read_chunks("uploads/a.data")) == first + second
    assert incomplete(parts_store) == []
    with pytest.raises(StorageError) as gone:
        parts_store.put_part("uploads/a.data", upload_id, 3, tmp_path / "1")
    assert gone.value.code == "no-such-upload"


def test_an_aborted_upload_leaves_no_parts(parts_store: Storage, tmp_path: Path) -> None:
    assert isinstance(parts_store, PartUploads)
    upload_id = parts_store.start_parts("uploads/b.data")
    parts_store.put_part("uploads/b.data", upload_id, 1, write(tmp_path / "1", os.urandom(5 * MiB)))
    assert incomplete(parts_store) != []
    assert parts_store.abort_upload("uploads/b.data", upload_id) is True
    assert incomplete(parts_store) == []
    if isinstance(parts_store, LocalStorage):   # SeaweedFS answers a second abort with success too
        assert parts_store.abort_upload("uploads/b.data", upload_id) is False
    with pytest.raises(StorageError) as gone:
        parts_store.put_part("uploads/b.data", upload_id, 2, tmp_path / "1")
    assert gone.value.code == "no-such-upload"
    assert not parts_store.exists("uploads/b.data")


def test_copy_records_the_targets_type_cache_rule_and_sha(parts_store: Storage) -> None:
    assert isinstance(parts_store, PartUploads)
    data = os.urandom(3 * MiB + 5)
    parts_store.replace("uploads/c.data", data, content_type="application/octet-stream")
    target = raw_key(sha(data))
    assert parts_store.copy("uploads/c.data", target, sha256=sha(data),
                            content_type="application/octet-stream") is True
    info = parts_store.head(target)
    assert info is not None and (info.bytes, info.sha256) == (len(data), sha(data))
    assert parts_store.copy("uploads/c.data", target, sha256=sha(data),
                            content_type="application/octet-stream") is False, "already there: skipped"
    assert parts_store.get_bytes(target) == data


def test_a_large_copy_goes_multipart_server_side_with_its_metadata(s3_server: SeaweedS3, s3_env: dict[str, str],
                                                                   s3_storage: S3Storage) -> None:
    storage = S3Storage("media", s3_storage.prefix, endpoint_url=s3_server.endpoint,
                        multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    data = os.urandom(11 * MiB)
    storage.replace("uploads/d.data", data, content_type="application/octet-stream")
    assert storage.copy("uploads/d.data", raw_key(sha(data)), sha256=sha(data),
                        content_type="application/octet-stream")
    head = s3_server.client().head_object(Bucket="media", Key=f"{storage.prefix}/{raw_key(sha(data))}")
    assert head["ETag"].strip('"').endswith("-3"), "copied in three 5 MiB parts"
    assert (head["Metadata"], head["CacheControl"], head["ContentType"]) == (
        {"sha256": sha(data)}, IMMUTABLE, "application/octet-stream")
    assert storage.get_bytes(raw_key(sha(data))) == data
    assert storage.incomplete_uploads() == []


def test_s3_refuses_a_small_part_but_the_last(s3_storage: S3Storage, tmp_path: Path) -> None:
    upload_id = s3_storage.start_parts("uploads/e.data")
    one = s3_storage.put_part("uploads/e.data", upload_id, 1, write(tmp_path / "1", b"x" * MiB))
    two = s3_storage.put_part("uploads/e.data", upload_id, 2, write(tmp_path / "2", b"y" * MiB))
    with pytest.raises(StorageError):
        s3_storage.complete_parts("uploads/e.data", upload_id, [one, two])
    assert s3_storage.abort_upload("uploads/e.data", upload_id) is True


def test_s3_parts_go_unsigned_with_their_crc32_which_the_server_checks(s3_storage: S3Storage,
                                                                      tmp_path: Path) -> None:
    """A part is not hashed for the signature: its CRC-32 (given by the caller, who computed it
    while writing the part, or read from the file) is in a signed header and the server refuses a
    body that does not match it."""
    data = os.urandom(5 * MiB)
    headers: list[dict[str, str]] = []
    client = s3_storage._part_sender()

    def seen(request: object, **_: object) -> None:
        headers.append({name.lower(): value.decode() if isinstance(value, bytes) else value
                        for name, value in request.headers.items()})  # type: ignore[attr-defined]

    def changed(request: object, **_: object) -> None:
        request.body = b"x" * len(data)  # type: ignore[attr-defined]

    client.meta.events.register("before-send.s3.UploadPart", seen)
    upload_id = s3_storage.start_parts("uploads/g.data")
    part = s3_storage.put_part("uploads/g.data", upload_id, 1, write(tmp_path / "1", data))
    checksum = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    assert headers[-1]["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert headers[-1]["x-amz-checksum-crc32"] == checksum == part.checksum
    assert "x-amz-checksum-sha256" not in headers[-1]
    given = s3_storage.put_part("uploads/g.data", upload_id, 1, tmp_path / "1", crc32=zlib.crc32(data))
    assert headers[-1]["x-amz-checksum-crc32"] == checksum == given.checksum
    with pytest.raises(StorageError, match="part 1"):   # a CRC-32 that is not the file's
        s3_storage.put_part("uploads/g.data", upload_id, 1, tmp_path / "1", crc32=zlib.crc32(b"other"))
    client.meta.events.register("before-send.s3.UploadPart", changed)
    try:
        with pytest.raises(StorageError):
            s3_storage.put_part("uploads/g.data", upload_id, 2, tmp_path / "1")
    finally:
        client.meta.events.unregister("before-send.s3.UploadPart", changed)
        client.meta.events.unregister("before-send.s3.UploadPart", seen)
    part = s3_storage.put_part("uploads/g.data", upload_id, 1, tmp_path / "1")
    s3_storage.complete_parts("uploads/g.data", upload_id, [part])
    assert s3_storage.get_bytes("uploads/g.data") == data


def test_the_local_store_is_also_appending_and_s3_is_not(tmp_path: Path, s3_storage: S3Storage) -> None:
    local = LocalStorage(tmp_path / "store")
    assert isinstance(local, Appending) and not isinstance(s3_storage, Appending)
    with local.open_append("uploads/f.data") as handle:
        handle.write(b"abc")
    with local.open_append("uploads/f.data") as handle:
        assert handle.tell() == 3
        handle.write(b"def")
    assert local.get_bytes("uploads/f.data") == b"abcdef"


# -- the service's uploads in S3 --------------------------------------------------------------------

async def chunks(data: bytes, size: int = 64 * 1024, cut: bool = False) -> AsyncIterator[bytes]:
    """A request body as uvicorn hands it over; ``cut``: the client goes away at the end."""
    for start in range(0, len(data), size):
        yield data[start:start + size]
    if cut:
        raise ClientDisconnect()


def send(uploads: Uploads, upload: Upload, data: bytes, *, checksum: bytes | None = None,
         cut: bool = False) -> Upload:
    return asyncio.run(uploads.receive(upload, chunks(data, cut=cut), checksum=checksum)).upload


def new_upload(uploads: Uploads, length: int) -> Upload:
    return uploads.create(story="tin-thu-nghiem", file="media/clip.mp4", desk="thoi-su", created_by="t",
                          length=length, metadata="")


def keys(store: S3Storage) -> list[str]:
    return list(store.list("uploads/"))


def test_an_upload_in_parts_and_tail_continued_by_another_replica(s3_storage: S3Storage,
                                                                  tmp_path: Path) -> None:
    data = os.urandom(2 * PART_BYTES + 3 * MiB + 123)
    first = Uploads(s3_storage, tmp_path / "spool-a", 3600)
    upload = new_upload(first, len(data))
    assert upload.multipart and upload.part_bytes == PART_BYTES
    upload = send(first, upload, data[:3 * MiB])               # under a part: all of it is the tail
    assert (upload.offset, upload.parts, upload.tail_bytes) == (3 * MiB, [], 3 * MiB)
    assert s3_storage.get_bytes(tail_key(upload.id)) == data[:3 * MiB]
    middle = PART_BYTES + 4 * MiB
    upload = send(first, upload, data[3 * MiB:middle])        # the tail and more: one part, the rest a tail
    assert [part["bytes"] for part in upload.parts] == [PART_BYTES]
    assert upload.offset == middle and upload.tail_bytes == middle - PART_BYTES

    second = Uploads(s3_storage, tmp_path / "spool-b", 3600)   # another replica: no running hash
    again = second.read(upload.id)
    assert again is not None and again.offset == middle
    done = send(second, again, data[middle:])
    assert done.done and done.sha256 == sha(data)
    assert [part["bytes"] for part in done.parts][:2] == [PART_BYTES, PART_BYTES]
    assert s3_storage.get_bytes(raw_key(sha(data))) == data
    raw = s3_storage.head(raw_key(sha(data)))
    assert raw is not None and (raw.sha256, raw.content_type) == (sha(data), "application/octet-stream")
    assert records.attached(s3_storage, "tin-thu-nghiem") == {"media/clip.mp4": (sha(data), len(data))}
    assert keys(s3_storage) == [record_key(upload.id)], "no data, no tail: only the record, marked done"
    assert s3_storage.incomplete_uploads() == []
    assert list((tmp_path / "spool-a").iterdir()) == [] and list((tmp_path / "spool-b").iterdir()) == []


def test_an_upload_begun_with_sha256_parts_is_continued_with_them(s3_storage: S3Storage,
                                                                  tmp_path: Path) -> None:
    """A record written before parts carried a CRC-32 (no ``part_checksum``: its multipart upload
    was started for SHA-256 parts) goes on with SHA-256 parts, which the server checks, and completes."""
    data = os.urandom(PART_BYTES + 2 * MiB)
    uploads = Uploads(s3_storage, tmp_path / "spool", 3600)
    upload = new_upload(uploads, len(data))
    assert upload.part_checksum == "crc32"
    s3_storage.abort_upload(upload.target, upload.multipart)
    older = upload.to_json()
    del older["part_checksum"]
    older["multipart"] = s3_storage.start_parts(upload.target, part_checksum="sha256")
    s3_storage.put_bytes(record_key(upload.id), json.dumps(older).encode(), content_type="application/json")
    again = uploads.read(upload.id)
    assert again is not None and again.part_checksum == "sha256"
    done = send(uploads, again, data)
    assert done.done and done.sha256 == sha(data)
    assert [len(base64.b64decode(part["checksum"])) for part in done.parts] == [32, 32]
    assert s3_storage.get_bytes(raw_key(sha(data))) == data


def test_parts_carry_the_crc32_computed_as_they_were_written(s3_storage: S3Storage, tmp_path: Path) -> None:
    data = os.urandom(PART_BYTES + 2 * MiB)
    uploads = Uploads(s3_storage, tmp_path / "spool", 3600)
    done = send(uploads, new_upload(uploads, len(data)), data)
    expected = [zlib.crc32(data[:PART_BYTES]), zlib.crc32(data[PART_BYTES:])]
    assert [int.from_bytes(base64.b64decode(part["checksum"]), "big") for part in done.parts] == expected


def test_a_request_of_whole_parts_leaves_no_tail_whatever_its_chunks(s3_storage: S3Storage,
                                                                     tmp_path: Path) -> None:
    """Parts are cut at exactly the part size, not wherever a received chunk ends: a request of
    two whole parts sends two parts and stores no tail (which the next request would read back)."""
    data = os.urandom(3 * PART_BYTES)
    uploads = Uploads(s3_storage, tmp_path / "spool", 3600)
    upload = new_upload(uploads, len(data))
    upload = asyncio.run(uploads.receive(upload, chunks(data[:2 * PART_BYTES], size=100_003))).upload
    assert [part["bytes"] for part in upload.parts] == [PART_BYTES, PART_BYTES]
    assert (upload.offset, upload.tail_bytes) == (2 * PART_BYTES, 0)
    assert keys(s3_storage) == [record_key(upload.id)]
    done = asyncio.run(uploads.receive(upload, chunks(data[2 * PART_BYTES:], size=77_777))).upload
    assert done.done and s3_storage.get_bytes(raw_key(sha(data))) == data


def test_a_wrong_checksum_keeps_nothing_in_s3(s3_storage: S3Storage, tmp_path: Path) -> None:
    data = os.urandom(PART_BYTES + 2 * MiB)
    uploads = Uploads(s3_storage, tmp_path / "spool", 3600)
    upload = send(uploads, new_upload(uploads, len(data)), data[:MiB])
    before = {key: s3_storage.get_bytes(key) for key in keys(s3_storage)}
    with pytest.raises(Problem) as refused:
        send(uploads, upload, data[MiB:], checksum=hashlib.sha256(b"other").digest())
    assert refused.value.status == 460
    again = uploads.read(upload.id)
    assert again is not None and (again.offset, again.parts) == (MiB, [])
    assert {key: s3_storage.get_bytes(key) for key in keys(s3_storage)} == before
    done = send(uploads, again, data[MiB:], checksum=hashlib.sha256(data[MiB:]).digest())
    assert done.done and s3_storage.get_bytes(raw_key(sha(data))) == data


def test_a_cut_request_keeps_its_parts_and_tail(s3_storage: S3Storage, tmp_path: Path) -> None:
    data = os.urandom(2 * PART_BYTES + MiB)
    uploads = Uploads(s3_storage, tmp_path / "spool", 3600)
    upload = new_upload(uploads, len(data))
    kept = send(uploads, upload, data[:PART_BYTES + 2 * MiB + 5], cut=True)
    assert kept.offset == PART_BYTES + 2 * MiB + 5 and kept.tail_bytes == 2 * MiB + 5
    record = uploads.read(upload.id)
    assert record is not None and record.offset == kept.offset
    done = send(uploads, record, data[kept.offset:])
    assert done.done and s3_storage.get_bytes(raw_key(sha(data))) == data


def test_terminate_and_expiry_leave_no_parts_tail_or_record(s3_storage: S3Storage, tmp_path: Path) -> None:
    uploads = Uploads(s3_storage, tmp_path / "spool", 1)
    for _ in range(2):
        send(uploads, new_upload(uploads, 3 * PART_BYTES), os.urandom(PART_BYTES + MiB))
    assert len(s3_storage.incomplete_uploads("uploads/")) == 2 and len(keys(s3_storage)) == 4
    ended = uploads.read(sorted(keys(s3_storage))[0][len("uploads/"):][:32])
    assert ended is not None
    uploads.terminate(ended)
    assert len(s3_storage.incomplete_uploads("uploads/")) == 1 and len(keys(s3_storage)) == 2
    asyncio.run(asyncio.sleep(1.1))
    assert uploads.clean_expired() == 1
    assert s3_storage.incomplete_uploads("uploads/") == [] and keys(s3_storage) == []


def test_parts_aborted_behind_the_services_back_restart_the_upload(s3_storage: S3Storage,
                                                                   tmp_path: Path) -> None:
    """Someone aborted the multipart upload (a bucket rule, an operator's clean-up): the client is
    sent back to offset 0 on a fresh multipart upload, and the file still arrives whole."""
    data = os.urandom(PART_BYTES + MiB)
    uploads = Uploads(s3_storage, tmp_path / "spool", 3600)
    upload = send(uploads, new_upload(uploads, len(data)), data[:PART_BYTES + 10])
    aborted = upload.multipart
    assert s3_storage.abort_incomplete_uploads("uploads/") == 1
    with pytest.raises(Problem) as restarted:
        send(uploads, upload, data[PART_BYTES + 10:])
    assert restarted.value.status == 409 and restarted.value.headers["Upload-Offset"] == "0"
    record = uploads.read(upload.id)
    assert record is not None and record.offset == 0 and record.multipart != aborted
    done = send(uploads, record, data)
    assert done.done and s3_storage.get_bytes(raw_key(sha(data))) == data


class WatchedParts(S3Storage):
    """The real store, watching its parts: how many are on their way at once, how many spool files
    the service holds meanwhile, which parts got there; ``hold``: part -> parts that must have got
    there before it goes (10 s at most); ``refuse``: a part the store refuses once it goes."""

    def __init__(self, like: S3Storage, spool: Path, *, hold: dict[int, set[int]] | None = None,
                 refuse: int = 0) -> None:
        super().__init__(like.bucket, like.prefix, endpoint_url=like.endpoint, max_attempts=2)
        self.spool, self.hold, self.refuse = spool, hold or {}, refuse
        self.changed = threading.Condition()
        self.sending = self.most_at_once = self.most_spooled = 0
        self.arrived: list[int] = []
        self.files: set[Path] = set()

    def put_part(self, key: str, upload_id: str, number: int, path: Path, *, part_checksum: str = "crc32",
                 crc32: int | None = None) -> UploadedPart:
        with self.changed:
            self.changed.wait_for(lambda: self.hold.get(number, set()) <= set(self.arrived), timeout=10)
            self.sending += 1
            self.most_at_once = max(self.most_at_once, self.sending)
            self.most_spooled = max(self.most_spooled, len(list(self.spool.iterdir())))
            self.files.add(path)
        try:
            if number == self.refuse:
                raise StorageError(f"part {number} refused (the test's store)")
            sent = super().put_part(key, upload_id, number, path, part_checksum=part_checksum, crc32=crc32)
        finally:
            with self.changed:
                self.sending -= 1
        with self.changed:
            self.arrived.append(number)
            self.changed.notify_all()
        return sent


def test_a_request_sends_several_parts_at_once_with_a_bound_on_spool_files(s3_storage: S3Storage,
                                                                           tmp_path: Path) -> None:
    data = os.urandom(9 * 5 * MiB + 7)
    store = WatchedParts(s3_storage, tmp_path / "spool", hold={1: {2}})   # 1 goes once 2 got there
    uploads = Uploads(store, tmp_path / "spool", 3600, part_bytes=5 * MiB)
    done = send(uploads, new_upload(uploads, len(data)), data)
    assert done.done and store.get_bytes(raw_key(sha(data))) == data
    assert [part["number"] for part in done.parts] == list(range(1, 11))
    assert 2 <= store.most_at_once <= PARTS_IN_FLIGHT
    assert store.most_spooled <= PARTS_IN_FLIGHT + 1, "the parts on their way and the one filling"
    assert len(store.files) < len(done.parts), "a spool file is written over once its part is stored"
    assert [part["bytes"] for part in done.parts] == [5 * MiB] * 9 + [7], "the last cut to its own bytes"
    assert list((tmp_path / "spool").iterdir()) == []


def test_a_part_slow_to_arrive_holds_up_neither_the_others_nor_the_next(s3_storage: S3Storage,
                                                                       tmp_path: Path) -> None:
    later = PARTS_IN_FLIGHT + 2
    data = os.urandom(later * 5 * MiB)
    # part 1 goes only once every later part got there: they must go on without it
    store = WatchedParts(s3_storage, tmp_path / "spool", hold={1: set(range(2, later + 1))})
    uploads = Uploads(store, tmp_path / "spool", 3600, part_bytes=5 * MiB)
    started = time.monotonic()
    done = send(uploads, new_upload(uploads, len(data)), data)
    assert time.monotonic() - started < 8, "part 1 was let go by the hold's timeout, not by the others"
    assert store.arrived[-1] == 1 and sorted(store.arrived) == list(range(1, later + 1))
    assert done.done and store.get_bytes(raw_key(sha(data))) == data
    assert [part["number"] for part in done.parts] == list(range(1, later + 1)), "recorded in order"
    assert store.most_at_once <= PARTS_IN_FLIGHT
    assert store.most_spooled <= PARTS_IN_FLIGHT + 1
    assert list((tmp_path / "spool").iterdir()) == []


class CountedSaves(Uploads):
    saves = 0

    def save(self, upload: Upload) -> None:
        self.saves += 1
        super().save(upload)


def test_a_request_saves_its_record_now_and_then_and_at_its_end(s3_storage: S3Storage, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(12 * 5 * MiB)
    uploads = CountedSaves(s3_storage, tmp_path / "spool", 3600, part_bytes=5 * MiB)
    upload = new_upload(uploads, len(data))
    monkeypatch.setattr("api.uploads.SAVE_EVERY_S", 3600.0)
    uploads.saves = 0
    half = send(uploads, upload, data[:6 * 5 * MiB])
    assert uploads.saves == 1, "once, at the end: not once per part"
    record = uploads.read(upload.id)
    assert record is not None and (record.offset, record.parts) == (half.offset, half.parts)
    assert half.offset == 6 * 5 * MiB
    monkeypatch.setattr("api.uploads.SAVE_EVERY_S", 0.0)
    uploads.saves = 0
    done = send(uploads, half, data[6 * 5 * MiB:])
    assert done.done and uploads.saves >= 6, "every part recorded is saved when asked to"


def test_a_part_refused_after_later_ones_arrived_keeps_only_the_parts_before_it(s3_storage: S3Storage,
                                                                              tmp_path: Path) -> None:
    data = os.urandom(6 * 5 * MiB)
    store = WatchedParts(s3_storage, tmp_path / "spool", hold={2: {3, 4}}, refuse=2)
    uploads = Uploads(store, tmp_path / "spool", 3600, part_bytes=5 * MiB)
    upload = new_upload(uploads, len(data))
    with pytest.raises(StorageError, match="refused"):
        send(uploads, upload, data)
    assert {3, 4} <= set(store.arrived), "the later parts got there first"
    record = uploads.read(upload.id)
    assert record is not None and (record.offset, [p["number"] for p in record.parts]) == (5 * MiB, [1])
    assert list((tmp_path / "spool").iterdir()) == []
    store.refuse = 0
    done = send(uploads, record, data[record.offset:])
    assert done.done and store.get_bytes(raw_key(sha(data))) == data
    assert [part["bytes"] for part in done.parts] == [5 * MiB] * 6


def test_parts_lost_while_several_are_on_their_way_restart_the_upload_once(s3_storage: S3Storage,
                                                                          tmp_path: Path) -> None:
    data = os.urandom(6 * 5 * MiB)
    uploads = Uploads(s3_storage, tmp_path / "spool", 3600, part_bytes=5 * MiB)
    upload = send(uploads, new_upload(uploads, len(data)), data[:5 * MiB])
    assert s3_storage.abort_incomplete_uploads("uploads/") == 1
    with pytest.raises(Problem) as restarted:
        send(uploads, upload, data[5 * MiB:])
    assert restarted.value.status == 409 and restarted.value.headers["Upload-Offset"] == "0"
    record = uploads.read(upload.id)
    assert record is not None and record.offset == 0 and record.parts == []
    assert s3_storage.incomplete_uploads("uploads/") == [(f"uploads/{upload.id}.data", record.multipart)]
    done = send(uploads, record, data)
    assert done.done and s3_storage.get_bytes(raw_key(sha(data))) == data


def test_a_record_damaged_in_the_store_is_a_storage_error(s3_storage: S3Storage, tmp_path: Path) -> None:
    uploads = Uploads(s3_storage, tmp_path / "spool", 3600)
    upload = new_upload(uploads, 100)
    s3_storage.replace(record_key(upload.id), b'{"schema": "storymedia/upload@1", "id": 5}',
                       content_type="application/json")
    with pytest.raises(StorageError, match="damaged"):
        uploads.read(upload.id)


# -- a declared SHA-256: assembled at the raw's key, never a wrong or replaced raw -------------------

def declared_upload(uploads: Uploads, data: bytes, declared: str | None = None) -> Upload:
    return uploads.create(story="tin-thu-nghiem", file="media/clip.mp4", desk="thoi-su", created_by="t",
                          length=len(data), metadata="", sha256=declared or sha(data))


@pytest.fixture
def no_copy(s3_storage: S3Storage, monkeypatch: pytest.MonkeyPatch) -> S3Storage:
    def refuse(*_: object, **__: object) -> bool:
        raise AssertionError("the bytes were copied in the store")
    monkeypatch.setattr(s3_storage, "copy", refuse)
    return s3_storage


def test_a_declared_sha256_assembles_the_parts_at_the_raw_without_a_copy(no_copy: S3Storage,
                                                                         tmp_path: Path) -> None:
    data = os.urandom(2 * PART_BYTES + 3 * MiB)
    uploads = Uploads(no_copy, tmp_path / "spool", 3600)
    upload = declared_upload(uploads, data)
    assert upload.direct and upload.target == raw_key(sha(data))
    upload = send(uploads, upload, data[:PART_BYTES + MiB])
    done = send(uploads, upload, data[PART_BYTES + MiB:])
    assert done.done and done.sha256 == sha(data)
    assert no_copy.get_bytes(raw_key(sha(data))) == data
    raw = no_copy.head(raw_key(sha(data)))
    assert raw is not None and (raw.sha256, raw.content_type) == (sha(data), "application/octet-stream")
    assert records.attached(no_copy, "tin-thu-nghiem") == {"media/clip.mp4": (sha(data), len(data))}
    assert keys(no_copy) == [record_key(upload.id)] and no_copy.incomplete_uploads() == []


def test_a_wrong_declared_sha256_never_reaches_the_raws_key(s3_storage: S3Storage, tmp_path: Path) -> None:
    data = os.urandom(PART_BYTES + 3 * MiB)
    uploads = Uploads(s3_storage, tmp_path / "spool", 3600)
    declared = sha(b"the file the client meant")
    upload = send(uploads, declared_upload(uploads, data, declared), data[:PART_BYTES + MiB])
    with pytest.raises(Problem) as refused:
        send(uploads, upload, data[PART_BYTES + MiB:])
    assert refused.value.status == 460
    assert not s3_storage.exists(raw_key(declared)) and not s3_storage.exists(raw_key(sha(data)))
    assert keys(s3_storage) == [] and s3_storage.incomplete_uploads() == []
    assert records.attached(s3_storage, "tin-thu-nghiem") == {}


def test_another_replica_finishing_a_declared_upload_checks_it_after_assembly(no_copy: S3Storage,
                                                                              tmp_path: Path) -> None:
    """The replica that finishes did not see every byte (no running hash): it assembles at the
    raw's key, reads the file back once, and removes it if it is not the declared one."""
    for declared_right in (True, False):
        data = os.urandom(PART_BYTES + 2 * MiB)
        declared = sha(data) if declared_right else sha(data + b"!")
        first = Uploads(no_copy, tmp_path / "spool-a", 3600)
        upload = send(first, declared_upload(first, data, declared), data[:PART_BYTES + MiB])
        second = Uploads(no_copy, tmp_path / "spool-b", 3600)
        again = second.read(upload.id)
        assert again is not None and again.direct
        if declared_right:
            assert send(second, again, data[PART_BYTES + MiB:]).done
            assert no_copy.get_bytes(raw_key(declared)) == data
        else:
            with pytest.raises(Problem) as refused:
                send(second, again, data[PART_BYTES + MiB:])
            assert refused.value.status == 460 and not no_copy.exists(raw_key(declared))
        assert no_copy.incomplete_uploads() == []


def test_a_declared_file_already_stored_is_never_replaced(s3_storage: S3Storage, tmp_path: Path) -> None:
    data = os.urandom(PART_BYTES + MiB)
    s3_storage.put_bytes(raw_key(sha(data)), data, content_type="application/octet-stream")
    uploads = Uploads(s3_storage, tmp_path / "spool", 3600)
    upload = declared_upload(uploads, data)
    assert not upload.direct, "stored already: the parts go apart, and the copy is skipped"
    assert send(uploads, upload, data).done
    assert s3_storage.get_bytes(raw_key(sha(data))) == data and s3_storage.incomplete_uploads() == []


def test_the_same_file_stored_meanwhile_is_kept_and_the_parts_dropped(s3_storage: S3Storage,
                                                                      tmp_path: Path) -> None:
    data = os.urandom(PART_BYTES + MiB)
    uploads = Uploads(s3_storage, tmp_path / "spool", 3600)
    upload = send(uploads, declared_upload(uploads, data), data[:PART_BYTES + 10])
    s3_storage.put_bytes(raw_key(sha(data)), data, content_type="application/octet-stream")
    stored = s3_storage.head(raw_key(sha(data)))
    done = send(uploads, upload, data[PART_BYTES + 10:])
    assert done.done and s3_storage.head(raw_key(sha(data))) == stored
    assert s3_storage.incomplete_uploads() == [] and keys(s3_storage) == [record_key(upload.id)]

    # The same, finished by a replica that cannot check the bytes first: sent again, apart.
    other = os.urandom(PART_BYTES + MiB)
    first = Uploads(s3_storage, tmp_path / "spool-a", 3600)
    upload = send(first, declared_upload(first, other), other[:PART_BYTES + 10])
    s3_storage.put_bytes(raw_key(sha(other)), other, content_type="application/octet-stream")
    second = Uploads(s3_storage, tmp_path / "spool-b", 3600)
    again = second.read(upload.id)
    assert again is not None
    with pytest.raises(Problem) as restarted:
        send(second, again, other[PART_BYTES + 10:])
    assert restarted.value.status == 409 and restarted.value.headers["Upload-Offset"] == "0"
    record = second.read(upload.id)
    assert record is not None and not record.direct and record.offset == 0
    assert send(second, record, other).done
    assert s3_storage.get_bytes(raw_key(sha(other))) == other
    assert s3_storage.incomplete_uploads() == []
