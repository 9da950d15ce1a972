"""Resumable uploads (tus 1.0): the upload records and the bytes in progress, in the private store.

    uploads/<id>.json   the record: story, file, desk, length, offset, times, and in the cluster the
                        multipart upload's id and parts, the tail's size and SHA-256
    uploads/<id>.data   embedded: the bytes so far, one file appended to; cluster: the object the
                        multipart upload is assembled into at the end
    uploads/<id>.tail   cluster: the bytes after the last whole part (less than a part), sent again
                        at the head of the next part by whichever service replica continues

(Side by side, not in a folder per upload: a local folder would stay behind, empty, after each.)

A request's body is never whole in memory: it goes to the data file (embedded) or to spool files
of one part each under the service's spool folder, each sent as a part once full, a few at once
(``PARTS_IN_FLIGHT``), and recorded in order (cluster). With an ``Upload-Checksum`` nothing of the
request is kept until the body matches it. Every byte is hashed once for the file's SHA-256 and
once for its part's CRC-32, as it is written to the spool (the store checks each part against its
CRC-32; the file's SHA-256 is checked here before the parts are assembled). A finished upload is
hashed (SHA-256: a running hash while this process sees every request, else read back), stored at
``raw/<sha[:2]>/<sha>`` the way ``submit`` stores raws, attached to the story's file, and its bytes
in progress deleted; the record stays, marked done, until it expires (a client asking again still
sees the whole offset). Unfinished uploads past their expiry are removed by ``clean_expired()``
(the background cleaner): the record, the data file or the multipart upload and its tail.

One request at a time per upload in this process (``claim()``); the record is the truth between
requests, so any replica sharing the store can take the next one. Within a request it is saved
at most once a second (``SAVE_EVERY_S``), and at the request's end, also a failed one: a replica
that dies mid-request leaves it a second behind at most, and the client sends those bytes again.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import tempfile
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from api import metrics, records
from api.problems import Problem
from api.service import Service
from pipeline.errors import ConfigError, PipelineError, StorageError
from pipeline.model.keys import raw_key
from pipeline.storage import IMMUTABLE, NO_CACHE, Storage, UploadCleanup
from pipeline.storage.base import PART_CHECKSUMS, Appending, PartUploads, UploadedPart, crc32

log = logging.getLogger("storymedia.api.uploads")

MiB = 1 << 20
PART_BYTES = 16 * MiB
"""Size of a multipart upload's parts (S3 wants at least 5 MiB but for the last); 16 MiB: half the
requests of 8 MiB parts, and less work for the store per byte."""
MAX_PARTS = 9_000
"""Parts a file is planned in at most (S3 allows 10,000): bigger files get bigger parts."""
PARTS_IN_FLIGHT = 4
"""Full parts one request sends to the store at once (cluster); with the part filling, a request
holds at most ``PARTS_IN_FLIGHT + 1`` parts in spool files (on disk, never in memory). 4: a 1 GB
upload in one PATCH took 6.5 s against 6.7 with 2 or 3, 7.1 with 6 and 7.5 with 8 (medians of 4-5
interleaved rounds, SeaweedFS on the same 2 vCPUs): past what the store takes in at once, more
parts only add to its work."""
UNRECORDED_PARTS = 4 * PARTS_IN_FLIGHT
"""Parts a request may have sent past the oldest one not yet arrived (recorded, in order, once it
has): a slow part does not stall the others, and what a failed one makes void stays bounded."""
PART_SENDERS = 8
"""Parts one service process sends at once, all its uploads together: threads of their own, so a
few big uploads never take the threads every other request needs (and under the store client's
10 connections)."""
SAVE_EVERY_S = 1.0
"""While a request's parts arrive, its record is saved at most this often (and always at its end)."""
BATCH_BYTES = 4 * MiB
"""Bytes of a request gathered in memory before they are written out (and hashed) in a thread,
while the next batch is received: at most two batches per request in memory."""
UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
RAW_CONTENT_TYPE = "application/octet-stream"
"""What ``submit`` stores raws as (pipeline.run.originals.store_original's default)."""
_RECORD = re.compile(r"uploads/([0-9a-f]{32})\.json")
_BYTES = re.compile(r"uploads/([0-9a-f]{32})\.(?:data|tail)")
_HASHES_KEPT = 1000
_PARTS_LOST = "the store lost the parts sent so far"
_SCHEMA = "storymedia/upload@1"


def record_key(upload_id: str) -> str:
    return f"uploads/{upload_id}.json"


def data_key(upload_id: str) -> str:
    return f"uploads/{upload_id}.data"


def tail_key(upload_id: str) -> str:
    return f"uploads/{upload_id}.tail"


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


@dataclass
class Upload:
    """One upload's record (``uploads/<id>.json``)."""

    id: str
    story: str
    file: str
    """The story's file name as the story writes it (NFC)."""
    desk: str
    """The story's desk: who may continue, look at or end the upload."""
    created_by: str
    """The id of the token that created it (never the token)."""
    length: int
    offset: int
    created: float
    expires: float
    metadata: str
    """``Upload-Metadata`` as the client sent it (HEAD answers it back)."""
    part_bytes: int = PART_BYTES
    multipart: str = ""
    """Cluster: the multipart upload's id (empty: bytes appended to one file)."""
    parts: list[dict[str, Any]] = field(default_factory=list)
    """Cluster: the parts sent, in order: number, tag, checksum, bytes."""
    tail_bytes: int = 0
    tail_sha256: str = ""
    assembled: bool = False
    """Cluster: the parts are assembled into ``uploads/<id>.data`` (the multipart id is spent)."""
    sha256: str = ""
    """The whole file's SHA-256, once known (at completion)."""
    done: bool = False
    """Stored as a raw and attached to the story's file."""
    declared_sha256: str = ""
    """The whole file's SHA-256 as the client declared it (``Upload-Metadata`` ``sha256``): the
    finished file must have it (460 otherwise, and nothing is kept)."""
    part_checksum: str = "sha256"
    """Cluster: what each part carries for the store to check (``crc32`` since it is computed as
    the part is written; records of uploads started before that say ``sha256``)."""
    direct: bool = False
    """Cluster, with a declared SHA-256 whose raw was not stored yet: the parts are assembled
    straight at ``raw/<sha>``, after the bytes were checked against the declaration, instead of
    at ``uploads/<id>.data`` and then copied there (a second pass over every byte in the store)."""

    @property
    def target(self) -> str:
        """The key the bytes are assembled at."""
        return raw_key(self.declared_sha256) if self.direct else data_key(self.id)

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires

    @property
    def sent_bytes(self) -> int:
        return sum(int(part["bytes"]) for part in self.parts)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(schema=_SCHEMA, created=_stamp(self.created), expires=_stamp(self.expires))
        return data

    @classmethod
    def from_json(cls, data: Any, upload_id: str) -> Upload:
        try:
            if not isinstance(data, dict) or data.pop("schema", None) != _SCHEMA:
                raise ValueError("not an upload record")
            data["created"] = datetime.fromisoformat(data["created"]).timestamp()
            data["expires"] = datetime.fromisoformat(data["expires"]).timestamp()
            upload = cls(**data)
            whole = (upload.length, upload.offset, upload.part_bytes, upload.tail_bytes)
            if (upload.id != upload_id or not all(type(n) is int and n >= 0 for n in whole)
                    or upload.offset > upload.length
                    or not (upload.declared_sha256 == "" or SHA256_HEX.fullmatch(upload.declared_sha256))
                    or (upload.direct and not upload.declared_sha256)
                    or upload.part_checksum not in PART_CHECKSUMS
                    or not all(isinstance(p, dict) and type(p.get("number")) is int
                               and isinstance(p.get("tag"), str) and type(p.get("bytes")) is int
                               for p in upload.parts)):
                raise ValueError("fields out of range")
        except (KeyError, TypeError, ValueError) as exc:
            raise StorageError(f"the upload record {upload_id} is damaged ({exc})") from exc
        return upload


class _Sink(Protocol):
    """Where one request's bytes go, until they are kept (``keep``) or dropped (``drop``)."""

    received: int

    async def open(self) -> None: ...

    async def write(self, data: bytes | bytearray) -> None: ...

    async def keep(self) -> None: ...

    async def drop(self) -> None: ...


@dataclass(frozen=True)
class Received:
    """What became of one request's body."""

    upload: Upload
    disconnected: bool = False
    """The client went away before the end (the bytes that arrived are kept, unless a checksum
    was given)."""


@contextlib.contextmanager
def _held_here(name: str) -> Iterator[bool]:
    """No other replica (the ``hold`` of one process)."""
    yield True


class Uploads:
    """The uploads of one private store; the service keeps one (``uploads_of``)."""

    def __init__(self, private: Storage, spool: Path, expiry: int, *, append: bool = True,
                 part_bytes: int = PART_BYTES,
                 hold: Callable[[str], AbstractContextManager[bool]] = _held_here) -> None:
        if not isinstance(private, PartUploads):
            raise ConfigError(f"the private store {private.url} cannot take resumable uploads"
                              " (it has no part uploads)")
        self.private = private
        self.parts: PartUploads = private
        self.appending: Appending | None = private if append and isinstance(private, Appending) else None
        """Embedded: the store grows the data file in place; None: multipart uploads."""
        self.spool = spool
        self.expiry = expiry
        self.part_bytes = max(part_bytes, private.min_part_bytes)
        self._lock = threading.Lock()
        self._busy: set[str] = set()
        self._hashes: OrderedDict[str, tuple[int, Any]] = OrderedDict()
        self.senders = ThreadPoolExecutor(max_workers=PART_SENDERS, thread_name_prefix="storymedia-part")
        """Where parts are sent from (threads start when first needed)."""
        self.on_finished: Callable[[Upload], None] | None = None
        """Told of every upload finished here (the service's metrics)."""
        self.hold = hold
        """Holds a name against the service's other replicas (the backend's ``hold``)."""

    # -- records -----------------------------------------------------------------------------------

    def read(self, upload_id: str) -> Upload | None:
        if not UPLOAD_ID.fullmatch(upload_id) or not self.private.exists(record_key(upload_id)):
            return None
        try:
            data = json.loads(self.private.get_bytes(record_key(upload_id)))
        except StorageError:
            if not self.private.exists(record_key(upload_id)):
                return None   # removed in between
            raise
        except ValueError as exc:
            raise StorageError(f"the upload record {upload_id} is not valid JSON") from exc
        return Upload.from_json(data, upload_id)

    def save(self, upload: Upload) -> None:
        self.private.replace(record_key(upload.id), json.dumps(upload.to_json(), ensure_ascii=False,
                                                                sort_keys=True).encode("utf-8"),
                             content_type="application/json", cache_control=NO_CACHE)

    @contextlib.contextmanager
    def claim(self, upload_id: str) -> Iterator[None]:
        """Hold the upload for one request: 409 while another request holds it, in this process
        or (through ``hold``, the cluster's lock in Redis) in another replica of the service."""
        with self._lock:
            if upload_id in self._busy:
                raise Problem("conflict", _BUSY)
            self._busy.add(upload_id)
        try:
            with self.hold(f"upload:{upload_id}") as held:
                if not held:
                    raise Problem("conflict", _BUSY)
                yield
        finally:
            with self._lock:
                self._busy.discard(upload_id)

    def busy(self, upload_id: str) -> bool:
        with self._lock:
            return upload_id in self._busy

    # -- the running hash of each upload this process has seen from the start -------------------

    def _remember_hash(self, upload_id: str, offset: int, digest: Any) -> None:
        with self._lock:
            self._hashes[upload_id] = (offset, digest.copy())
            self._hashes.move_to_end(upload_id)
            while len(self._hashes) > _HASHES_KEPT:
                self._hashes.popitem(last=False)

    def _running_hash(self, upload: Upload) -> Any:
        """A copy of the hash of the upload's first ``offset`` bytes, or None when unknown here."""
        if upload.offset == 0:
            return hashlib.sha256()
        with self._lock:
            known = self._hashes.get(upload.id)
            return known[1].copy() if known and known[0] == upload.offset else None

    def _forget_hash(self, upload_id: str) -> None:
        with self._lock:
            self._hashes.pop(upload_id, None)

    # -- life of an upload ------------------------------------------------------------------------

    def create(self, *, story: str, file: str, desk: str, created_by: str, length: int,
               metadata: str, sha256: str = "") -> Upload:
        """A new upload's record (and its multipart upload, in the cluster). ``sha256``: the whole
        file's SHA-256 as the client declares it (hex), if it does."""
        now = time.time()
        upload = Upload(id=secrets.token_hex(16), story=story, file=file, desk=desk, created_by=created_by,
                        length=length, offset=0, created=now, expires=now + self.expiry, metadata=metadata,
                        part_bytes=max(self.part_bytes, -(-length // MAX_PARTS)), declared_sha256=sha256,
                        part_checksum="crc32")
        if self.appending is None:
            self._start_parts(upload)
        try:
            self.save(upload)
        except PipelineError:
            if upload.multipart:
                with contextlib.suppress(PipelineError):
                    self.parts.abort_upload(upload.target, upload.multipart)
            raise
        log.info("upload %s created for %s of story %s (%d bytes) by %s", upload.id, upload.file,
                 upload.story, upload.length, created_by)
        return upload

    def _start_parts(self, upload: Upload) -> None:
        """Start the multipart upload: straight at the raw's key when the client declared the
        file's SHA-256 and that raw is not stored yet."""
        sha = upload.declared_sha256
        upload.direct = bool(sha) and not self.private.exists(raw_key(sha), sha)
        as_raw: dict[str, str] = {"sha256": sha, "cache_control": IMMUTABLE} if upload.direct else {}
        upload.multipart = self.parts.start_parts(upload.target, content_type=RAW_CONTENT_TYPE,
                                                  part_checksum=upload.part_checksum, **as_raw)

    async def receive(self, upload: Upload, body: AsyncIterator[bytes], *,
                      checksum: bytes | None = None) -> Received:
        """Append ``body`` at the upload's offset (the caller checked the offset and holds the
        upload); finish the upload when it is whole. With ``checksum`` (the SHA-256 the body must
        have) nothing is kept unless it matches (460). Past the upload's length: 413, and nothing of
        the request is kept beyond what was already saved."""
        request_hash = hashlib.sha256() if checksum is not None else None
        sink: _Sink = (_AppendSink(self, upload, request_hash) if self.appending is not None
                       else _PartSink(self, upload, request_hash))
        await sink.open()
        room = upload.length - upload.offset
        batch = bytearray()
        taken = 0
        disconnected = False
        writing: asyncio.Task[None] | None = None
        """The batch being written (and hashed) while the next one is received: one at a time, in order."""

        async def written() -> None:
            nonlocal writing
            if writing is not None:
                task, writing = writing, None
                await task

        try:
            try:
                async for chunk in body:
                    taken += len(chunk)
                    if taken > room:
                        raise Problem("too-large", f"the upload has {room} bytes left to send; this request"
                                      " sends more", errors=[("Upload-Length", "the body goes past it")])
                    batch += chunk
                    if len(batch) >= BATCH_BYTES:
                        full, batch = batch, bytearray()
                        await written()
                        writing = asyncio.ensure_future(sink.write(full))
            except ClientDisconnect:
                disconnected = True
            await written()
            if batch:
                full, batch = batch, bytearray()
                await sink.write(full)
            if request_hash is not None and (disconnected or request_hash.digest() != checksum):
                await sink.drop()
                if disconnected:
                    return Received(upload, disconnected=True)
                raise Problem("checksum-mismatch", "the body's SHA-256 is not the one in Upload-Checksum;"
                              " nothing of this request was kept: send it again",
                              errors=[("Upload-Checksum", "does not match the body")])
            await sink.keep()
        except BaseException:
            if writing is not None:   # let it end before its file is closed under it
                with contextlib.suppress(BaseException):
                    await asyncio.shield(writing)
            await sink.drop()
            raise
        if upload.offset == upload.length:
            upload = await run_in_threadpool(self.finish, upload)
        return Received(upload, disconnected=disconnected)

    def finish(self, upload: Upload) -> Upload:
        """Store the whole file as a raw and attach it to the story's file (every step may be
        run again after a failure: the record says how far it got)."""
        if upload.done:
            return upload
        if upload.direct and not upload.assembled:
            self._finish_direct(upload)
        data = data_key(upload.id)
        if upload.multipart and not upload.assembled:
            self._assemble(upload)
        if not upload.sha256:
            running = self._running_hash(upload)
            if running is not None:
                upload.sha256 = running.hexdigest()
            else:
                digest, size = hashlib.sha256(), 0
                for chunk in self.parts.read_chunks(data):
                    digest.update(chunk)
                    size += len(chunk)
                if size != upload.length:
                    self._restart(upload, f"the stored bytes add up to {size}, not {upload.length}")
                upload.sha256 = digest.hexdigest()
            if upload.declared_sha256 and upload.sha256 != upload.declared_sha256:
                self._refuse_declared(upload)
            self.save(upload)
        if not upload.direct:
            self.parts.copy(data, raw_key(upload.sha256), sha256=upload.sha256, content_type=RAW_CONTENT_TYPE,
                            cache_control=IMMUTABLE)
            self.private.delete(data)
        records.attach(self.private, upload.story, upload.file, upload.sha256, upload.length)
        self.private.delete(tail_key(upload.id))
        upload.done = True
        self.save(upload)
        self._forget_hash(upload.id)
        if self.on_finished is not None:
            try:
                self.on_finished(upload)
            except Exception:
                log.exception("upload %s: the finished-upload hook failed", upload.id)
        log.info("upload %s finished: %s of story %s is raw %s (%d bytes)", upload.id, upload.file,
                 upload.story, upload.sha256, upload.length)
        return upload

    def _assemble(self, upload: Upload) -> None:
        parts = [UploadedPart(number=int(p["number"]), tag=str(p["tag"]),
                              checksum=str(p.get("checksum", ""))) for p in upload.parts]
        try:
            self.parts.complete_parts(upload.target, upload.multipart, parts)
        except StorageError as exc:
            if exc.code != "no-such-upload":
                raise
            self._restart(upload, _PARTS_LOST)
        upload.assembled = True
        self.save(upload)

    def _finish_direct(self, upload: Upload) -> None:
        """Assemble the parts at the raw's key, never leaving bytes there that are not the
        declared file, nor replacing a raw already stored."""
        sha = upload.declared_sha256
        running = self._running_hash(upload)
        if running is not None and running.hexdigest() != sha:
            self._refuse_declared(upload)   # checked before a byte lands on the raw's key
        stored = self.private.exists(raw_key(sha), sha)
        if stored and running is not None:
            # The same bytes were stored meanwhile (another upload of the same file): ours are
            # not needed.
            self.parts.abort_upload(upload.target, upload.multipart)
            upload.assembled, upload.sha256 = True, sha
            self.save(upload)
            return
        if stored:
            # Part of the upload went through another service process, so its bytes cannot be
            # checked before they are assembled, and assembling them would replace a raw: send
            # them again, to be assembled apart (the raw is there now) and checked first.
            self._restart(upload, "the file was stored by another upload meanwhile")
        self._assemble(upload)
        if running is None:   # read back once, and removed if it is not the declared file
            digest = hashlib.sha256()
            for chunk in self.parts.read_chunks(upload.target):
                digest.update(chunk)
            if digest.hexdigest() != sha:
                self.private.delete(upload.target)
                self._refuse_declared(upload)
        upload.sha256 = sha
        self.save(upload)

    def _refuse_declared(self, upload: Upload) -> None:
        """The file is not the one the client declared: nothing of it is kept (460)."""
        log.warning("upload %s of %s (story %s): the file's SHA-256 is not the declared %s; removed",
                    upload.id, upload.file, upload.story, upload.declared_sha256)
        self._drop_bytes(upload)
        self.private.delete(record_key(upload.id))
        self._forget_hash(upload.id)
        raise Problem("checksum-mismatch", "the file's SHA-256 is not the one declared in Upload-Metadata"
                      " (sha256): nothing of it was kept; check the file and upload it again",
                      errors=[("Upload-Metadata.sha256", "does not match the file")])

    def _restart(self, upload: Upload, why: str) -> None:
        """The bytes in progress are lost: the upload starts again from 0 (409, offset 0)."""
        log.warning("upload %s starts again from 0: %s", upload.id, why)
        self._drop_bytes(upload)
        upload.offset, upload.parts, upload.tail_bytes, upload.tail_sha256 = 0, [], 0, ""
        upload.assembled, upload.sha256 = False, ""
        if upload.multipart:
            upload.part_checksum = "crc32"
            self._start_parts(upload)
        self.save(upload)
        self._forget_hash(upload.id)
        raise Problem("conflict", f"{why}; send the file again from offset 0",
                      headers={"Upload-Offset": "0"})

    def _drop_bytes(self, upload: Upload) -> None:
        if upload.multipart and not upload.assembled:
            self.parts.abort_upload(upload.target, upload.multipart)
        self.private.delete(data_key(upload.id))
        self.private.delete(tail_key(upload.id))

    def terminate(self, upload: Upload) -> None:
        """Remove everything of the upload (a finished upload's raw stays: it is the story's)."""
        if not upload.done:
            self._drop_bytes(upload)
        self.private.delete(record_key(upload.id))
        self._forget_hash(upload.id)
        log.info("upload %s removed (%s of story %s, %d of %d bytes)", upload.id, upload.file,
                 upload.story, upload.offset, upload.length)

    def clean_expired(self) -> int:
        """Remove the expired uploads (records, bytes in progress, multipart uploads) and whatever a
        crash left without a record; returns how many uploads were removed."""
        removed = 0
        recorded: set[str] = set()
        unrecorded: set[str] = set()
        for key in self.private.list("uploads/"):
            if found := _RECORD.fullmatch(key):
                recorded.add(found.group(1))
            elif found := _BYTES.fullmatch(key):
                unrecorded.add(found.group(1))
        for upload_id in sorted(recorded):
            try:
                with self.claim(upload_id):
                    upload = self.read(upload_id)
                    if upload is not None and upload.expired:
                        self.terminate(upload)
                        removed += 1
            except Problem:
                continue   # a request holds it: not abandoned
            except PipelineError as exc:
                log.warning("upload %s could not be cleaned: %s", upload_id, exc.reason)
        for upload_id in sorted(unrecorded - recorded):
            if not self.busy(upload_id) and not self.private.exists(record_key(upload_id)):
                self.private.delete(data_key(upload_id))
                self.private.delete(tail_key(upload_id))
        if isinstance(self.private, UploadCleanup):   # multipart uploads whose record never got written
            self.private.abort_incomplete_uploads("uploads/", older_than=self.expiry + 3600)
        self._clean_spool()
        return removed

    def _clean_spool(self) -> None:
        cutoff = time.time() - self.expiry
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.spool):
                with contextlib.suppress(OSError):
                    if entry.name.startswith("upload-") and entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)

    def spool_file(self, upload_id: str) -> tuple[Path, BinaryIO]:
        try:
            self.spool.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self.spool, prefix=f"upload-{upload_id}-")
        except OSError as exc:
            raise StorageError(f"cannot spool an upload in {self.spool}: {exc.strerror or exc}") from exc
        return Path(name), os.fdopen(fd, "wb")


class _AppendSink:
    """Embedded: the bytes go straight to the end of ``uploads/<id>.data``."""

    def __init__(self, uploads: Uploads, upload: Upload, request_hash: Any) -> None:
        assert uploads.appending is not None
        self.uploads, self.upload, self.store = uploads, upload, uploads.appending
        self.running = uploads._running_hash(upload)
        self.hashes = [digest for digest in (request_hash, self.running) if digest is not None]
        self.received = 0
        self.handle: BinaryIO | None = None

    async def open(self) -> None:
        def opened() -> BinaryIO:
            handle = self.store.open_append(data_key(self.upload.id))
            try:
                size = handle.tell()
                if size > self.upload.offset:   # a request cut short before its record was saved
                    handle.truncate(self.upload.offset)
                elif size < self.upload.offset:
                    self.upload.offset = size
                    self.uploads.save(self.upload)
                    self.uploads._forget_hash(self.upload.id)
                    raise Problem("conflict", f"only {size} bytes of the upload are stored; go on from there",
                                  headers={"Upload-Offset": str(size)})
            except BaseException:
                handle.close()
                raise
            return handle

        self.handle = await run_in_threadpool(opened)

    async def write(self, data: bytes | bytearray) -> None:
        def written() -> None:
            assert self.handle is not None
            self.handle.write(data)
            for digest in self.hashes:
                digest.update(data)

        await run_in_threadpool(written)
        self.received += len(data)

    async def keep(self) -> None:
        def kept() -> None:
            assert self.handle is not None
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()
            self.handle = None
            self.upload.offset += self.received
            self.uploads.save(self.upload)
            if self.running is not None:
                self.uploads._remember_hash(self.upload.id, self.upload.offset, self.running)

        await run_in_threadpool(kept)

    async def drop(self) -> None:
        def dropped() -> None:
            if self.handle is not None:
                with contextlib.suppress(OSError):
                    self.handle.truncate(self.upload.offset)
                self.handle.close()
                self.handle = None

        await run_in_threadpool(dropped)


@dataclass
class _SpoolPart:
    path: Path
    handle: BinaryIO
    size: int = 0
    number: int = 0
    running: Any = None
    """The upload's running hash up to the end of this part (when known)."""
    crc32: int = 0
    """The part's CRC-32 so far (its checksum for the store, computed as it is written)."""


class _PartSink:
    """Cluster: the bytes go to spool files of one part each; a full part is sent to the store's
    multipart upload at once, up to ``PARTS_IN_FLIGHT`` of them while the next fills (or, with a
    checksum, only once the whole body matches it). Parts are recorded in order as they arrive,
    so the offset only ever covers parts that all got there. What is left at the end under a part's
    size becomes the tail object."""

    def __init__(self, uploads: Uploads, upload: Upload, request_hash: Any) -> None:
        self.uploads, self.upload, self.store = uploads, upload, uploads.parts
        self.deferred = request_hash is not None
        self.request_hash = request_hash
        self.running = uploads._running_hash(upload)
        self.start = upload.offset
        """Where this request began (``upload.offset`` moves as parts are recorded)."""
        self.had_tail = upload.tail_bytes > 0
        self.received = 0
        self.next_number = len(upload.parts) + 1
        self.current: _SpoolPart | None = None
        self.sealed: list[_SpoolPart] = []
        self.inflight: deque[tuple[_SpoolPart, asyncio.Future[UploadedPart]]] = deque()
        self.spooled: list[Path] = []
        self.saved_at, self.saved_offset = time.monotonic(), upload.offset
        """When the record was last saved, and at what offset (``SAVE_EVERY_S``)."""
        self.free: list[Path] = []
        """Spool files whose parts got to the store, to be written over: rewriting pages the kernel
        already holds costs a third of writing a new file (and freeing it)."""

    def _new_part(self) -> _SpoolPart:
        if self.free:
            path = self.free.pop()
            return _SpoolPart(path=path, handle=path.open("r+b"))
        path, handle = self.uploads.spool_file(self.upload.id)
        self.spooled.append(path)
        return _SpoolPart(path=path, handle=handle)

    async def open(self) -> None:
        def opened() -> _SpoolPart:
            part = self._new_part()
            if not self.upload.tail_bytes:
                return part
            part.handle.close()
            try:
                self.uploads.private.download(tail_key(self.upload.id), part.path)
            except StorageError as exc:
                log.warning("upload %s: its tail cannot be read back (%s)", self.upload.id, exc.reason)
            part.size, tail_sha, part.crc32 = _file_digests(part.path)
            part.handle = part.path.open("ab")
            if part.size != self.upload.tail_bytes or tail_sha != self.upload.tail_sha256:
                part.handle.close()
                self.upload.offset = self.upload.sent_bytes
                self.upload.tail_bytes, self.upload.tail_sha256 = 0, ""
                self.uploads.save(self.upload)
                self.uploads._forget_hash(self.upload.id)
                raise Problem("conflict", f"the bytes after {self.upload.offset} were lost; go on from there",
                              headers={"Upload-Offset": str(self.upload.offset)})
            return part

        try:
            self.current = await run_in_threadpool(opened)
        except BaseException:
            self._unlink_spool()
            raise

    async def write(self, data: bytes | bytearray) -> None:
        """Spool ``data``, cutting parts at exactly ``part_bytes``: a request of whole parts then
        leaves no tail to store and read back."""
        view = memoryview(data)
        while view:
            part = self.current
            assert part is not None
            room = self.upload.part_bytes - part.size
            piece, view = (view[:room], view[room:]) if room > 0 else (view, view[len(view):])

            def written(part: _SpoolPart = part, piece: memoryview = piece) -> None:
                part.handle.write(piece)
                part.crc32 = crc32(piece, part.crc32)
                for digest in (self.request_hash, self.running):
                    if digest is not None:
                        digest.update(piece)

            await run_in_threadpool(written)
            part.size += len(piece)
            self.received += len(piece)
            if part.size == self.upload.part_bytes and self.start + self.received < self.upload.length:
                await self._seal()

    async def _seal(self) -> None:
        part = self.current
        assert part is not None
        part.handle.truncate()   # a file written over may have been longer
        part.handle.close()
        part.number = self.next_number
        self.next_number += 1
        part.running = self.running.copy() if self.running is not None else None
        if self.deferred:
            self.sealed.append(part)
        else:
            await self._send(part)
        self.current = await run_in_threadpool(self._new_part)

    async def _send(self, part: _SpoolPart) -> None:
        """Start sending ``part`` once fewer than ``PARTS_IN_FLIGHT`` are on their way (the bound
        on spool files: that many, and then the one filling), recording the parts that got there
        in order meanwhile. A part that is slow to arrive holds up neither the others nor the
        next: its slot waits, the rest go on (up to ``UNRECORDED_PARTS`` parts past it)."""
        while True:
            while self.inflight and self.inflight[0][1].done():
                await self._record_oldest()
            on_their_way = [sending for _, sending in self.inflight if not sending.done()]
            if len(on_their_way) < PARTS_IN_FLIGHT and len(self.inflight) < UNRECORDED_PARTS:
                break
            await asyncio.wait(on_their_way, return_when=asyncio.FIRST_COMPLETED)
        sending = asyncio.wrap_future(self.uploads.senders.submit(self._put, part))

        def arrived(done: asyncio.Future[UploadedPart], path: Path = part.path) -> None:
            if not done.cancelled() and done.exception() is None:
                self.free.append(path)   # its bytes are in the store: the file may be written over

        sending.add_done_callback(arrived)
        self.inflight.append((part, sending))

    async def _record_oldest(self) -> None:
        """Wait for the oldest part in flight and record it (the offset moves to its end)."""
        part, sending = self.inflight.popleft()
        try:
            sent = await sending
        except StorageError as exc:
            await self._settle()
            if exc.code == "no-such-upload":
                await run_in_threadpool(self.uploads._restart, self.upload, _PARTS_LOST)
            raise
        except BaseException:
            await self._settle()
            raise
        self._record(part, sent)
        if not self.deferred:
            self.upload.tail_bytes, self.upload.tail_sha256 = 0, ""
            self.upload.offset = self.upload.sent_bytes
            if time.monotonic() - self.saved_at >= SAVE_EVERY_S:
                await run_in_threadpool(self.uploads.save, self.upload)
                self.saved_at, self.saved_offset = time.monotonic(), self.upload.offset
            if part.running is not None:
                self.uploads._remember_hash(self.upload.id, self.upload.offset, part.running)

    async def _settle(self) -> None:
        """Wait for every part still in flight, keeping none of them (after a failure)."""
        while self.inflight:
            _, sending = self.inflight.popleft()
            with contextlib.suppress(Exception):
                await sending

    async def keep(self) -> None:
        for part in self.sealed:
            await self._send(part)
        self.sealed = []
        last = self.current
        assert last is not None
        last.handle.truncate()
        last.handle.close()
        complete = self.start + self.received == self.upload.length
        if complete and last.size:   # the last part goes with the others, not after them
            last.number = self.next_number
            await self._send(last)
        while self.inflight:
            await self._record_oldest()

        def kept() -> None:
            if complete or not last.size:
                self.upload.tail_bytes, self.upload.tail_sha256 = 0, ""
                if self.had_tail:
                    self.uploads.private.delete(tail_key(self.upload.id))
            else:
                size, tail_sha, _ = _file_digests(last.path)
                self.uploads.private.put_file(tail_key(self.upload.id), last.path, sha256=tail_sha,
                                              content_type=RAW_CONTENT_TYPE, cache_control=NO_CACHE)
                self.upload.tail_bytes, self.upload.tail_sha256 = size, tail_sha
            self.upload.offset = self.upload.sent_bytes + self.upload.tail_bytes
            self.uploads.save(self.upload)
            self.saved_offset = self.upload.offset
            if self.running is not None:
                self.uploads._remember_hash(self.upload.id, self.upload.offset, self.running)

        try:
            await run_in_threadpool(kept)
        finally:
            self._unlink_spool()

    def _put(self, part: _SpoolPart) -> UploadedPart:
        return self.store.put_part(self.upload.target, self.upload.multipart, part.number, part.path,
                                   part_checksum=self.upload.part_checksum, crc32=part.crc32)

    def _record(self, part: _SpoolPart, sent: UploadedPart) -> None:
        self.upload.parts = [p for p in self.upload.parts if p["number"] < part.number] + [
            {"number": sent.number, "tag": sent.tag, "checksum": sent.checksum, "bytes": part.size}]

    async def drop(self) -> None:
        """Keep the parts recorded before the failure (the record may not have been saved since)."""
        await self._settle()
        for part in (*self.sealed, *([self.current] if self.current else [])):
            part.handle.close()
        self._unlink_spool()
        if not self.deferred and self.upload.offset != self.saved_offset:
            try:
                await run_in_threadpool(self.uploads.save, self.upload)
            except StorageError as exc:   # the record stays behind: the client sends more again
                log.warning("upload %s: its record cannot be saved (%s)", self.upload.id, exc.reason)

    def _unlink_spool(self) -> None:
        for path in self.spooled:
            path.unlink(missing_ok=True)
        self.spooled = []


def _file_digests(path: Path) -> tuple[int, str, int]:
    """The size, SHA-256 and CRC-32 of a spool file (a tail: under one part)."""
    digest, size, crc = hashlib.sha256(), 0, 0
    with path.open("rb") as source:
        while chunk := source.read(MiB):
            digest.update(chunk)
            crc = crc32(chunk, crc)
            size += len(chunk)
    return size, digest.hexdigest(), crc


_BUSY = ("another request is writing to this upload; when it ends, ask HEAD for the offset and go on"
         " from there")


# -- the service's uploads -------------------------------------------------------------------------

_SERVICE_LOCK = threading.Lock()


def uploads_of(svc: Service) -> Uploads:
    """The service's uploads (made on first use, kept in ``svc.extras``)."""
    with _SERVICE_LOCK:
        found = svc.extras.get("uploads")
        if not isinstance(found, Uploads):
            found = Uploads(svc.backend.private, svc.config.spool, svc.config.upload_expiry,
                            hold=svc.backend.hold)
            found.on_finished = lambda upload: metrics.observe_upload(svc, time.time() - upload.created,
                                                                      upload.length)
            svc.extras["uploads"] = found
        return found


def start_cleaner(svc: Service) -> Callable[[], None]:
    """Clean expired uploads now and then in a background thread; returns the function that
    stops it (the service's lifespan calls both)."""
    uploads = uploads_of(svc)
    stop = threading.Event()
    period = min(300.0, max(1.0, uploads.expiry / 4))

    def loop() -> None:
        while True:
            try:
                removed = uploads.clean_expired()
                if removed:
                    log.info("removed %d expired uploads", removed)
            except PipelineError as exc:
                log.warning("cleaning expired uploads failed: %s", exc.reason)
            except Exception:
                log.exception("cleaning expired uploads failed")
            if stop.wait(period):
                return

    thread = threading.Thread(target=loop, name="storymedia-upload-cleaner", daemon=True)
    thread.start()

    def halt() -> None:
        stop.set()
        thread.join(timeout=10)

    return halt


def checksum_digest(header: str) -> bytes:
    """The SHA-256 an ``Upload-Checksum: sha256 <base64>`` header names (400 for anything else)."""
    algorithm, _, value = header.strip().partition(" ")
    if algorithm.lower() != "sha256":
        raise Problem("bad-request", f"Upload-Checksum: the algorithm {algorithm[:20]!r} is not supported"
                      " (Tus-Checksum-Algorithm: sha256)", errors=[("Upload-Checksum", "use sha256")])
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise Problem("bad-request", "Upload-Checksum: the value is not a base64 SHA-256",
                      errors=[("Upload-Checksum", "not a base64 SHA-256")])
    return digest
