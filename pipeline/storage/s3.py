"""S3Storage: an S3 bucket (AWS, SeaweedFS, Garage, ...) through boto3. The cluster's store.

The only module that imports boto3, and only when an ``s3://`` URL is opened. Every
boto3/botocore error is translated in one place (``S3Storage._mapped``) into a
:class:`~pipeline.errors.StorageError` with a reason a person can act on, raised ``from`` the
original.

- Writes record the full-file SHA-256 in the object metadata (``x-amz-meta-sha256``); a put of the
  same bytes is skipped after one HEAD. The server's own multipart checksum is composite (a hash
  of part hashes) and depends on the part size, so it is not what we compare.
- ``create()`` writes a key only if it is absent, decided by the server (``If-None-Match: *``), so
  of two writers racing for one manifest version exactly one wins. ``atomic_create`` says whether
  the server was seen to honour the condition (``check_create_only()``, run by ``ensure_bucket()``);
  where it is False a caller must serialise creates itself (a lock).
- Uploads go through s3transfer with a pinned part size; an upload that dies half-way leaves an
  *incomplete multipart upload*, never a visible partial object. Each S3Storage remembers the
  uploads it started and has not completed or aborted, and ``abort_own_uploads()`` aborts exactly
  those: keys are content-addressed, so another job may be uploading the same key right now, and an
  abort by prefix would kill its live upload. What a killed process left behind is for the
  lifecycle rule ``ensure_bucket()`` installs (a day) and ``abort_incomplete_uploads()`` with an age.
- Integrity checks are "when required" (boto3 >= 1.36 otherwise sends CRC32 trailers that some
  non-AWS servers refuse); uploads ask for an explicit SHA-256 checksum instead, which the server
  verifies for each request, and the parts of a resumable upload carry a CRC-32 in a header
  (the whole file's SHA-256 is checked by the service).
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import hashlib
import io
import logging
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

import boto3
import boto3.exceptions
import botocore.exceptions
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from pipeline.errors import StorageError
from pipeline.storage.base import (
    IMMUTABLE,
    NO_CACHE,
    PART_CHECKSUMS,
    ObjectInfo,
    StorageOptions,
    UploadedPart,
    file_crc32,
)

log = logging.getLogger(__name__)

MiB = 1 << 20
LIFECYCLE_RULE_ID = "storymedia-abort-incomplete-multipart-uploads"
CORS_RULE_ID = "storymedia-pages"
"""The CORS rule ``ensure_bucket`` keeps on a bucket whose objects pages read with scripts."""

_T = TypeVar("_T")
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_DENIED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
           "ExpiredToken", "TokenRefreshRequired", "AllAccessDisabled", "InvalidSecurity"}
_BUSY = {"503", "SlowDown", "ServiceUnavailable", "RequestTimeout", "InternalError", "500"}
_GONE_UPLOAD = {"NoSuchUpload", "404"}
_NO_BUCKET = {"404", "NoSuchBucket", "NotFound"}
_BOTO_ERRORS = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError,
                boto3.exceptions.Boto3Error)
_SET_UP = "cannot set up the S3 client for"
_CONDITION_REFUSED = {"PreconditionFailed", "ConditionalRequestConflict", "NotImplemented"}
_CONDITION_REFUSED_STATUS = {412, 409, 501}

_CREATE_TOKEN = "create-token"
"""Metadata field holding a random token per ``create()`` call: tells our own earlier attempt (a
retry after a lost response) from another writer's object."""


class _AnyCode(frozenset[str]):
    """``expected=_ANY_CODE``: every ClientError is a refusal the caller handles itself."""

    def __contains__(self, item: object) -> bool:
        return True


_ANY_CODE = _AnyCode()


@dataclass
class _Refusal:
    """A ClientError the caller expected (a missing key, a failed condition): ``_mapped`` hands it
    over instead of raising. False while nothing was refused."""

    error: botocore.exceptions.ClientError | None = None

    def __bool__(self) -> bool:
        return self.error is not None

    @property
    def code(self) -> str:
        return _code(self.error) if self.error is not None else ""

    @property
    def status(self) -> int:
        return _status(self.error) if self.error is not None else 0


def open_s3(url: str, options: StorageOptions) -> S3Storage:
    """``s3://bucket/prefix``."""
    parsed = urlparse(url)
    if not parsed.netloc:
        raise StorageError(f"no bucket in storage URL {url!r} (use s3://bucket/prefix)")
    multipart = {} if options.multipart_bytes is None else {
        "multipart_threshold": options.multipart_bytes, "multipart_chunksize": options.multipart_bytes}
    return S3Storage(parsed.netloc, unquote(parsed.path).strip("/"), endpoint_url=options.endpoint_url,
                     region=options.region, public_base=options.public_base,
                     presign_endpoint_url=options.presign_endpoint_url,
                     presign_expiry=options.presign_expiry, cors_origins=options.cors_origins, **multipart)


class S3Storage:
    """Objects in ``bucket`` under ``prefix``; keys given to the methods are relative to it."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        public_base: str | None = None,
        presign_endpoint_url: str | None = None,
        presign_expiry: int = 3600,
        multipart_threshold: int = 16 * MiB,
        multipart_chunksize: int = 16 * MiB,
        max_attempts: int = 5,
        connect_timeout: float = 5,
        read_timeout: float = 60,
        cors_origins: tuple[str, ...] = (),
    ) -> None:
        if not bucket or "/" in bucket:
            raise StorageError(f"invalid bucket name {bucket!r}")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.public_base = public_base.rstrip("/") + "/" if public_base else None
        self.presign_expiry = presign_expiry
        self.cors_origins = tuple(cors_origins)
        self.transfer_config = TransferConfig(
            multipart_threshold=multipart_threshold, multipart_chunksize=multipart_chunksize,
            max_concurrency=4, preferred_transfer_client="classic")
        config = Config(
            retries={"mode": "standard", "max_attempts": max_attempts},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        with self._mapped(_SET_UP, self.url, also=(ValueError,)):   # ValueError: a bad endpoint URL
            session = boto3.session.Session()
            self._client: Any = session.client("s3", endpoint_url=endpoint_url, region_name=region,
                                               config=config)
            presign_url = presign_endpoint_url or endpoint_url
            self._presigner: Any = (
                self._client if presign_url == endpoint_url
                else session.client("s3", endpoint_url=presign_url, region_name=region, config=config))
        self.endpoint = str(self._client.meta.endpoint_url)
        self.atomic_create = True
        """Whether the server honours ``If-None-Match: *`` on PutObject (SeaweedFS >= 4.48, AWS,
        MinIO do); ``check_create_only()`` finds out. When False, ``create()`` is only safe under
        a lock the caller holds."""
        self._own_lock = threading.Lock()
        self._own: dict[str, str] = {}   # upload id -> object key, for uploads this object started
        events = self._client.meta.events
        events.register("after-call.s3.CreateMultipartUpload", self._remember_upload)
        for operation in ("CompleteMultipartUpload", "AbortMultipartUpload"):
            events.register(f"before-parameter-build.s3.{operation}", self._note_upload_id)
            events.register(f"after-call.s3.{operation}", self._forget_finished_upload)

    def __repr__(self) -> str:
        return f"S3Storage({self.url!r}, endpoint={self.endpoint!r})"

    # -- keys ----------------------------------------------------------------------------------
    def _key(self, key: str) -> str:
        if not key or key.startswith("/") or ".." in key.split("/") or "\\" in key:
            raise StorageError(f"invalid key {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative(self, object_key: str) -> str:
        return object_key[len(self.prefix) + 1:] if self.prefix else object_key

    @property
    def _root(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""

    # -- errors --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _mapped(self, action: str, key: str | None = None, *, expected: Collection[str] = (),
                expected_status: Collection[int] = (),
                also: tuple[type[Exception], ...] = ()) -> Iterator[_Refusal]:
        """The one place boto3/botocore errors become StorageError (``from`` the original), with
        a reason that names ``action`` and ``key`` and says what to check (credentials, the
        bucket, the endpoint).

        A ClientError whose code is in ``expected`` (or HTTP status in ``expected_status``) is
        not an error for the caller: the block ends and the yielded :class:`_Refusal` holds it.
        ``also`` names further exception types to translate (the client's set-up).
        """
        refusal = _Refusal()
        try:
            yield refusal
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in expected or _status(exc) in expected_status:
                refusal.error = exc
                return
            raise StorageError(self._reason(exc, action, key)) from exc
        except (*_BOTO_ERRORS, *also) as exc:
            raise StorageError(self._reason(exc, action, key)) from exc

    def _reason(self, exc: BaseException, action: str, key: str | None) -> str:
        what = f"{action} {key}" if key else action
        if action == _SET_UP:   # no client yet: nothing was asked of the server
            return f"{what}: {exc}"
        # boto3's transfer wrappers hide the real error one level down.
        if isinstance(exc, boto3.exceptions.RetriesExceededError) and exc.last_exception is not None:
            exc = exc.last_exception
        if (isinstance(exc, boto3.exceptions.S3UploadFailedError)
                and isinstance(exc.__context__, botocore.exceptions.ClientError)):
            exc = exc.__context__
        where = f"the object store at {self.endpoint}"
        if isinstance(exc, botocore.exceptions.ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            message = str(error.get("Message", "")) or code
            if code in _NOT_FOUND and key is not None:
                return f"{key} is not in the store"
            if code in _DENIED:
                return (f"access denied to bucket {self.bucket} ({code}): check AWS_ACCESS_KEY_ID/"
                        "AWS_SECRET_ACCESS_KEY and the key's permissions")
            if code == "NoSuchBucket":
                return f"no such bucket {self.bucket} at {self.endpoint}"
            if code in _BUSY:
                return f"{what}: {where} is unavailable or overloaded ({code}: {message})"
            return f"{what} failed: {code}: {message}"
        if isinstance(exc, botocore.exceptions.NoCredentialsError):
            return ("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                    " (or AWS_PROFILE)")
        if isinstance(exc, botocore.exceptions.ConnectTimeoutError):
            return f"cannot reach {where} (connection timed out)"
        if isinstance(exc, botocore.exceptions.EndpointConnectionError):
            return f"cannot reach {where} ({_cause(exc)})"
        if isinstance(exc, botocore.exceptions.ReadTimeoutError):
            return f"{what}: {where} did not answer in time (read timeout)"
        if isinstance(exc, (botocore.exceptions.ConnectionClosedError,
                            botocore.exceptions.ConnectionError)):
            return f"{what}: {where} dropped the connection ({_cause(exc)})"
        if isinstance(exc, (botocore.exceptions.ResponseStreamingError,
                            botocore.exceptions.IncompleteReadError)):
            return f"{what}: the transfer from {where} broke off ({_cause(exc)})"
        if isinstance(exc, botocore.exceptions.BotoCoreError | boto3.exceptions.Boto3Error):
            return f"{what} failed: {exc}"
        if isinstance(exc, OSError):
            return f"{what} failed: {exc.strerror or exc}"
        return f"{what} failed: {type(exc).__name__}: {exc}"

    def _call(self, action: str, key: str | None, call: Callable[[], _T]) -> _T:
        with self._mapped(action, key):
            result = call()
        return result

    # -- writes --------------------------------------------------------------------------------
    def _extra_args(self, sha256: str, content_type: str, cache_control: str) -> dict[str, Any]:
        return {"ContentType": content_type, "CacheControl": cache_control,
                "Metadata": {"sha256": sha256}, "ChecksumAlgorithm": "SHA256"}

    def put_file(self, key: str, path: Path, *, sha256: str, content_type: str,
                 cache_control: str = IMMUTABLE) -> bool:
        if self.exists(key, sha256):
            return False
        object_key = self._key(key)
        extra = self._extra_args(sha256, content_type, cache_control)
        try:
            self._call("cannot upload", key, lambda: self._client.upload_file(
                str(path), self.bucket, object_key, ExtraArgs=extra, Config=self.transfer_config))
        except FileNotFoundError as exc:
            raise StorageError(f"cannot upload {key}: {path} does not exist") from exc
        return True

    def put_bytes(self, key: str, data: bytes, *, content_type: str,
                  cache_control: str = IMMUTABLE) -> bool:
        sha256 = hashlib.sha256(data).hexdigest()
        if self.exists(key, sha256):
            return False
        object_key = self._key(key)
        extra = self._extra_args(sha256, content_type, cache_control)
        self._call("cannot upload", key, lambda: self._client.upload_fileobj(
            io.BytesIO(data), self.bucket, object_key, ExtraArgs=extra, Config=self.transfer_config))
        return True

    def replace(self, key: str, data: bytes, *, content_type: str,
                cache_control: str = NO_CACHE) -> None:
        object_key = self._key(key)
        sha256 = hashlib.sha256(data).hexdigest()
        self._call("cannot write", key, lambda: self._client.put_object(
            Bucket=self.bucket, Key=object_key, Body=data,
            **self._extra_args(sha256, content_type, cache_control)))

    def create(self, key: str, data: bytes, *, content_type: str,
               cache_control: str = NO_CACHE) -> bool:
        """Write ``key`` only if nothing is stored there; False when something is (left as it was).

        One PutObject with ``If-None-Match: *``: the server decides, so of two writers racing for
        the same key exactly one gets True. Never multipart, whatever the size: SeaweedFS 4.48
        checks the condition of a CompleteMultipartUpload outside its object lock (several of 8
        concurrent completions succeeded), that of a single PutObject under it. A server that
        answers 409 ConditionalRequestConflict had another conditional write of the key in flight,
        which may yet fail: the key is looked at, and the put tried again while it is absent.
        """
        object_key = self._key(key)
        sha256 = hashlib.sha256(data).hexdigest()
        token = uuid.uuid4().hex
        args = self._extra_args(sha256, content_type, cache_control)
        args["Metadata"][_CREATE_TOKEN] = token
        for _ in range(3):
            with self._mapped("cannot create", key, expected=_CONDITION_REFUSED,
                              expected_status=_CONDITION_REFUSED_STATUS) as refused:
                self._client.put_object(Bucket=self.bucket, Key=object_key, Body=data,
                                        IfNoneMatch="*", **args)
            if not refused:
                return True
            if refused.code == "PreconditionFailed" or refused.status == 412:
                return self._created_with(key, object_key, token)
            if refused.code == "ConditionalRequestConflict" or refused.status == 409:
                if self.exists(key):
                    return self._created_with(key, object_key, token)
                continue
            raise StorageError(   # NotImplemented, 501
                f"cannot create {key}: the object store at {self.endpoint} does not support"
                " conditional writes (If-None-Match); use a lock to serialise creates",
                code="no-conditional-writes") from refused.error
        raise StorageError(f"cannot create {key}: other conditional writes of it kept conflicting"
                           f" at {self.endpoint}; try again")

    def _created_with(self, key: str, object_key: str, token: str) -> bool:
        """True when ``key`` holds what the ``create()`` call with ``token`` wrote: its first
        attempt landed and the answer was lost, so botocore's retry found the key taken."""
        with self._mapped("cannot look up", key, expected=_NOT_FOUND) as missing:
            response = self._client.head_object(Bucket=self.bucket, Key=object_key)
        if missing:
            return False   # taken, then deleted: either way not ours
        return bool((response.get("Metadata") or {}).get(_CREATE_TOKEN) == token)

    def check_create_only(self) -> bool:
        """Find out whether the server honours ``If-None-Match: *`` (sets ``atomic_create``).

        Creates a probe key twice under this storage's prefix: a server that ignores the
        condition lets the second create replace the first. The probe is deleted afterwards.
        """
        key = f".storymedia-create-probe/{uuid.uuid4().hex}"
        try:
            first = self.create(key, b"1", content_type="text/plain")
            second = self.create(key, b"2", content_type="text/plain")
            self.atomic_create = first and not second and self.get_bytes(key) == b"1"
        except StorageError as exc:
            if exc.code != "no-conditional-writes":
                raise
            self.atomic_create = False
        finally:
            with contextlib.suppress(StorageError):   # the store's error above says more
                self.delete(key)
        if not self.atomic_create:
            log.warning("the object store at %s ignores If-None-Match: creates of the same key can"
                        " overwrite each other unless the caller holds a lock", self.endpoint)
        return self.atomic_create

    def delete(self, key: str) -> None:
        object_key = self._key(key)
        with self._mapped("cannot delete", key, expected=_NOT_FOUND):
            self._client.delete_object(Bucket=self.bucket, Key=object_key)

    # -- reads ---------------------------------------------------------------------------------
    def head(self, key: str) -> ObjectInfo | None:
        object_key = self._key(key)
        with self._mapped("cannot look up", key, expected=_NOT_FOUND) as missing:
            response = self._client.head_object(Bucket=self.bucket, Key=object_key)
        if missing:
            return None
        metadata = response.get("Metadata") or {}
        return ObjectInfo(key=key, bytes=int(response.get("ContentLength", 0)),
                          sha256=str(metadata.get("sha256", "")),
                          content_type=str(response.get("ContentType", "")))

    def exists(self, key: str, sha256: str | None = None) -> bool:
        info = self.head(key)
        return info is not None and (sha256 is None or info.sha256 == sha256)

    def get_bytes(self, key: str) -> bytes:
        object_key = self._key(key)

        def read() -> bytes:
            response = self._client.get_object(Bucket=self.bucket, Key=object_key)
            with contextlib.closing(response["Body"]) as body:
                return bytes(body.read())

        return self._call("cannot read", key, read)

    def download(self, key: str, path: Path) -> None:
        object_key = self._key(key)
        path = Path(path)
        try:
            fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
            os.close(fd)
        except OSError as exc:
            raise StorageError(f"cannot download {key} to {path}: {exc.strerror or exc}") from exc
        tmp = Path(tmp_name)
        try:
            with self._mapped("cannot download", key):
                self._client.download_file(self.bucket, object_key, tmp_name,
                                           Config=self.transfer_config)
            os.replace(tmp, path)
        except OSError as exc:
            raise StorageError(f"cannot download {key} to {path}: {exc.strerror or exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def list(self, prefix: str = "") -> Iterator[str]:
        def collect() -> list[str]:
            keys: list[str] = []
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._root + prefix):
                keys.extend(self._relative(str(item["Key"])) for item in page.get("Contents", []))
            return keys

        return iter(sorted(self._call("cannot list", prefix or "the store", collect)))

    def public_url(self, key: str) -> str:
        return f"{self.public_base}{key}" if self.public_base else key

    def presign(self, key: str, expires_in: int | None = None) -> str:
        """A time-limited GET URL for ``key``, signed for the presign endpoint's host."""
        object_key = self._key(key)
        expiry = self.presign_expiry if expires_in is None else expires_in
        url = self._call("cannot sign a URL for", key, lambda: self._presigner.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": object_key}, ExpiresIn=expiry))
        return str(url)

    # -- part uploads (PartUploads) --------------------------------------------------------------
    min_part_bytes = 5 * MiB
    """S3's smallest part but the last."""
    _part_client: Any = None

    def _part_sender(self) -> Any:
        """The client that sends parts: the same settings, but the body is not hashed for the
        signature (``UNSIGNED-PAYLOAD``, which botocore only does by itself over https). Each part
        carries its checksum in a signed ``x-amz-checksum-*`` header and the server refuses a body
        that does not match it (BadDigest; SeaweedFS does not check a signed payload's hash at
        all): a CRC-32, which the sender usually computed while writing the part (no pass over the
        file here at all), and which costs the server a fraction of a SHA-256. The whole file's
        SHA-256 is the caller's to check before completing."""
        with self._own_lock:
            if self._part_client is None:
                config = self._client.meta.config
                unsigned = Config(s3={**(config.s3 or {}), "payload_signing_enabled": False})
                with self._mapped(_SET_UP, self.url):
                    self._part_client = boto3.session.Session().client(
                        "s3", endpoint_url=self.endpoint, region_name=self._client.meta.region_name,
                        config=config.merge(unsigned))
            return self._part_client

    def start_parts(self, key: str, *, content_type: str = "application/octet-stream", sha256: str = "",
                    cache_control: str = "", part_checksum: str = "crc32") -> str:
        """A multipart upload of ``key`` whose parts any process may send (a resumable upload)."""
        object_key = self._key(key)
        extra: dict[str, Any] = {"Metadata": {"sha256": sha256}} if sha256 else {}
        if cache_control:
            extra["CacheControl"] = cache_control
        algorithm = _part_algorithm(part_checksum)
        response = self._call("cannot start an upload of", key, lambda: self._client.create_multipart_upload(
            Bucket=self.bucket, Key=object_key, ContentType=content_type, ChecksumAlgorithm=algorithm,
            **extra))
        return str(response["UploadId"])

    def put_part(self, key: str, upload_id: str, number: int, path: Path, *, part_checksum: str = "crc32",
                 crc32: int | None = None) -> UploadedPart:
        object_key = self._key(key)
        algorithm = _part_algorithm(part_checksum)
        response: dict[str, Any] = {}
        try:
            if algorithm == "CRC32" and crc32 is None:
                crc32 = file_crc32(path)
            checksum = ({"ChecksumCRC32": _crc32_text(crc32)} if crc32 is not None and algorithm == "CRC32"
                        else {"ChecksumAlgorithm": algorithm})
            with (path.open("rb") as body,
                  self._mapped(f"cannot send part {number} of", key, expected=_GONE_UPLOAD) as gone):
                response = self._part_sender().upload_part(
                    Bucket=self.bucket, Key=object_key, UploadId=upload_id, PartNumber=number, Body=body,
                    **checksum)
        except OSError as exc:
            raise StorageError(f"cannot send part {number} of {key}: {exc.strerror or exc}") from exc
        if gone:
            raise StorageError(f"the upload of {key} is gone (completed, aborted or expired)",
                               code="no-such-upload") from gone.error
        return UploadedPart(number=number, tag=str(response["ETag"]),
                            checksum=str(response.get(f"Checksum{algorithm}", "")))

    def complete_parts(self, key: str, upload_id: str, parts: Sequence[UploadedPart]) -> None:
        object_key = self._key(key)
        listed = [{"PartNumber": part.number, "ETag": part.tag, **_part_checksum_field(part.checksum)}
                  for part in parts]
        with self._mapped("cannot assemble", key, expected=_GONE_UPLOAD) as gone:
            self._client.complete_multipart_upload(Bucket=self.bucket, Key=object_key, UploadId=upload_id,
                                                   MultipartUpload={"Parts": listed})
        if gone:
            raise StorageError(f"the upload of {key} is gone (completed, aborted or expired)",
                               code="no-such-upload") from gone.error

    def copy(self, source: str, target: str, *, sha256: str, content_type: str,
             cache_control: str = IMMUTABLE) -> bool:
        """Server-side copy (multipart copy above the transfer threshold, so any size), with the
        target's own type, cache rule and SHA-256; skipped when the target holds ``sha256``."""
        if self.exists(target, sha256):
            return False
        extra = {"ContentType": content_type, "CacheControl": cache_control,
                 "Metadata": {"sha256": sha256}, "MetadataDirective": "REPLACE"}
        source_key, target_key = self._key(source), self._key(target)
        self._call("cannot copy to", target, lambda: self._client.copy(
            {"Bucket": self.bucket, "Key": source_key}, self.bucket, target_key, ExtraArgs=extra,
            Config=self.transfer_config))
        return True

    def read_chunks(self, key: str) -> Iterator[bytes]:
        object_key = self._key(key)
        with self._mapped("cannot read", key):
            response = self._client.get_object(Bucket=self.bucket, Key=object_key)
            with contextlib.closing(response["Body"]) as body:
                yield from body.iter_chunks(MiB)

    # -- upkeep --------------------------------------------------------------------------------
    def incomplete_uploads(self, prefix: str = "", older_than: float = 0.0
                           ) -> builtins.list[tuple[str, str]]:
        """Multipart uploads under ``prefix`` that were started at least ``older_than`` seconds ago
        and never completed nor aborted: (key, upload id)."""
        cutoff = time.time() - older_than

        def collect() -> list[tuple[str, str]]:
            found: list[tuple[str, str]] = []
            paginator = self._client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._root + prefix):
                found.extend((self._relative(str(u["Key"])), str(u["UploadId"]))
                             for u in page.get("Uploads", [])
                             if not older_than or u["Initiated"].timestamp() <= cutoff)
            return sorted(found)

        return self._call("cannot list incomplete uploads in", self.url, collect)

    def abort_incomplete_uploads(self, prefix: str = "", older_than: float = 0.0) -> int:
        """Abort the incomplete multipart uploads under ``prefix`` started at least ``older_than``
        seconds ago, whoever started them; returns how many.

        Use it only with an age threshold longer than any upload takes (reconcile does), for what
        a killed worker left behind. Without one it aborts other jobs' *live* uploads of the same
        content-addressed keys (their parts then fail with NoSuchUpload and the asset is rendered
        again): to clean up after a failed attempt, use ``abort_own_uploads()``.
        """
        aborted = 0
        for key, upload_id in self.incomplete_uploads(prefix, older_than):
            object_key = self._key(key)
            with self._mapped("cannot abort the upload of", key, expected=_GONE_UPLOAD) as gone:
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=object_key,
                                                    UploadId=upload_id)
            if not gone:
                aborted += 1
        return aborted

    def own_uploads(self, prefix: str = "") -> builtins.list[tuple[str, str]]:
        """Multipart uploads under ``prefix`` that this object started and that have not been
        completed nor aborted (an abort that failed, a process about to exit): (key, upload id),
        for a caller that wants to persist them and abort them later."""
        with self._own_lock:
            found = [(self._relative(object_key), upload_id)
                     for upload_id, object_key in self._own.items()]
        return sorted(item for item in found if item[0].startswith(prefix))

    def abort_own_uploads(self, prefix: str = "") -> int:
        """Abort the multipart uploads under ``prefix`` that this object started and that did not
        complete; returns how many were aborted.

        s3transfer aborts a failed upload itself when the server lets it; this is for when it
        could not (the store was down). Other writers' uploads of the same keys are never touched.
        An abort that fails keeps its upload for a later call (a warning is logged, no error
        raised: this is clean-up, and the lifecycle rule is the last resort).
        """
        aborted = 0
        for key, upload_id in self.own_uploads(prefix):
            try:
                if self.abort_upload(key, upload_id):
                    aborted += 1
            except StorageError as exc:
                log.warning("%s; kept for a later abort", exc.reason)
        return aborted

    def abort_upload(self, key: str, upload_id: str) -> bool:
        """Abort one multipart upload by its id (one this or another process started and
        remembered); False when it is no longer there (completed, aborted or expired).
        StorageError when the store cannot be asked: the upload may still be there."""
        object_key = self._key(key)
        with self._mapped("cannot abort the upload of", key, expected=_GONE_UPLOAD) as gone:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=object_key,
                                                UploadId=upload_id)
        self._forget_upload(upload_id)
        return not gone

    # botocore event handlers: s3transfer calls the client from its own threads, so these keep
    # ``_own`` under a lock. ``context`` is one dict per API call, shared by its events.
    def _remember_upload(self, http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        if http_response.status_code < 300 and parsed.get("UploadId") and parsed.get("Key"):
            with self._own_lock:
                self._own[str(parsed["UploadId"])] = str(parsed["Key"])

    @staticmethod
    def _note_upload_id(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["storymedia_upload_id"] = params.get("UploadId")

    def _forget_finished_upload(self, http_response: Any, parsed: dict[str, Any],
                                context: dict[str, Any], **_: Any) -> None:
        upload_id = context.get("storymedia_upload_id")
        gone = str(parsed.get("Error", {}).get("Code", "")) in _GONE_UPLOAD
        if upload_id and (http_response.status_code < 300 or gone):
            self._forget_upload(str(upload_id))

    def _forget_upload(self, upload_id: str) -> None:
        with self._own_lock:
            self._own.pop(upload_id, None)

    def ensure_bucket(self) -> None:
        """Create the bucket if missing, make sure abandoned multipart uploads expire, and find
        out whether creates are atomic (``check_create_only()``).

        The bucket stays private (no ACL, no policy). Servers that refuse lifecycle rules only
        earn a warning: ``abort_incomplete_uploads()`` with an age does the same job when run.
        """
        with self._mapped("cannot check bucket", self.bucket, expected=_NO_BUCKET) as missing:
            self._client.head_bucket(Bucket=self.bucket)
        if missing:
            self._create_bucket()
        self._ensure_lifecycle()
        if self.cors_origins:
            self._ensure_cors()
        self.check_create_only()

    def _create_bucket(self) -> None:
        args: dict[str, Any] = {"Bucket": self.bucket}
        region = self._client.meta.region_name
        if region and region not in ("us-east-1", "aws-global"):
            args["CreateBucketConfiguration"] = {"LocationConstraint": region}
        with self._mapped("cannot create bucket", self.bucket,
                          expected={"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}):
            self._client.create_bucket(**args)

    def _ensure_lifecycle(self) -> None:
        rule = {"ID": LIFECYCLE_RULE_ID, "Status": "Enabled", "Filter": {"Prefix": ""},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}
        action = "cannot set the lifecycle rule of bucket"
        with self._mapped(action, self.bucket, expected=_ANY_CODE) as refused:
            response = self._client.get_bucket_lifecycle_configuration(Bucket=self.bucket)
        if refused and refused.code != "NoSuchLifecycleConfiguration":
            self._warn_no_lifecycle(refused)
            return
        rules = [] if refused else list(response.get("Rules", []))
        if any(r.get("ID") == LIFECYCLE_RULE_ID for r in rules):
            return
        # The call replaces the whole configuration: keep the operators' own rules.
        with self._mapped(action, self.bucket, expected=_ANY_CODE) as refused:
            self._client.put_bucket_lifecycle_configuration(
                Bucket=self.bucket, LifecycleConfiguration={"Rules": [*rules, rule]})
        if refused:
            self._warn_no_lifecycle(refused)

    def _ensure_cors(self) -> None:
        """Let the pages at ``cors_origins`` GET and HEAD objects from scripts (hls.js fetches
        playlists and segments through presigned URLs). The operators' own rules are kept; ours
        is replaced when the origins change. A server that refuses CORS earns a warning."""
        rule = {"ID": CORS_RULE_ID, "AllowedOrigins": list(self.cors_origins),
                "AllowedMethods": ["GET", "HEAD"], "AllowedHeaders": ["Range"],
                "ExposeHeaders": ["Content-Length", "Content-Range", "ETag"], "MaxAgeSeconds": 3600}
        action = "cannot set the CORS rule of bucket"
        with self._mapped(action, self.bucket, expected=_ANY_CODE) as refused:
            response = self._client.get_bucket_cors(Bucket=self.bucket)
        if refused and refused.code != "NoSuchCORSConfiguration":
            self._warn_no_cors(refused)
            return
        rules = [] if refused else list(response.get("CORSRules", []))
        ours = [r for r in rules if r.get("ID") == CORS_RULE_ID]
        if ours and sorted(ours[0].get("AllowedOrigins", [])) == sorted(self.cors_origins):
            return
        others = [r for r in rules if r.get("ID") != CORS_RULE_ID]
        with self._mapped(action, self.bucket, expected=_ANY_CODE) as refused:
            self._client.put_bucket_cors(Bucket=self.bucket, CORSConfiguration={"CORSRules": [*others, rule]})
        if refused:
            self._warn_no_cors(refused)

    def _warn_no_cors(self, refused: _Refusal) -> None:
        log.warning("bucket %s: the object store refused the CORS rule for %s (%s); the editor's"
                    " video player cannot read HLS playlists there (MP4 and photos still show)",
                    self.bucket, ", ".join(self.cors_origins), refused.code or refused.error)

    def _warn_no_lifecycle(self, refused: _Refusal) -> None:
        log.warning("bucket %s: the object store refused the lifecycle rule that aborts"
                    " incomplete uploads (%s); run abort_incomplete_uploads() with an age"
                    " now and then",
                    self.bucket, refused.code or refused.error)


def _part_algorithm(part_checksum: str) -> str:
    if part_checksum not in PART_CHECKSUMS:
        raise StorageError(f"unknown part checksum {part_checksum!r} (one of {', '.join(PART_CHECKSUMS)})")
    return part_checksum.upper()


def _crc32_text(crc32: int) -> str:
    """A CRC-32 as S3 writes it: the four bytes big-endian, in base64."""
    return base64.b64encode((crc32 & 0xFFFFFFFF).to_bytes(4, "big")).decode("ascii")


def _part_checksum_field(checksum: str) -> dict[str, str]:
    """The field that names a part's checksum when the upload is completed, by its size: four
    bytes are a CRC-32, 32 a SHA-256 (an upload started before CRC-32 parts)."""
    if not checksum:
        return {}
    try:
        size = len(base64.b64decode(checksum, validate=True))
    except ValueError:
        return {}
    return {"ChecksumCRC32": checksum} if size == 4 else {"ChecksumSHA256": checksum} if size == 32 else {}


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: botocore.exceptions.ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _cause(exc: BaseException) -> str:
    """'connection refused', 'name not resolved', ...: the useful end of a botocore message."""
    text = str(getattr(exc, "kwargs", {}).get("error", "")) or str(exc)
    for pattern, reason in ((r"refused", "connection refused"),
                            (r"Name or service not known|nodename nor servname|getaddrinfo",
                             "host name not found"),
                            (r"reset by peer", "connection reset"),
                            (r"timed out", "timed out"),
                            (r"No route to host|unreachable", "host unreachable")):
        if re.search(pattern, text, re.IGNORECASE):
            return reason
    return text[:200] or type(exc).__name__
