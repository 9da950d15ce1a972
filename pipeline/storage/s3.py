"""S3Storage: an S3 bucket (AWS, SeaweedFS, Garage, ...) through boto3. The cluster's store.

The only module that imports boto3. Every boto3/botocore error leaves this module as a
:class:`~pipeline.errors.StorageError` with a reason a person can act on, raised ``from`` the
original.

- Writes record the full-file SHA-256 in the object metadata (``x-amz-meta-sha256``); a put of the
  same bytes is skipped after one HEAD. The server's own multipart checksum is composite (a hash
  of part hashes) and depends on the part size, so it is not what we compare.
- Uploads go through s3transfer with a pinned part size; an upload that dies half-way leaves an
  *incomplete multipart upload*, never a visible partial object. ``ensure_bucket()`` installs a
  lifecycle rule that aborts those after a day, and ``abort_incomplete_uploads()`` does it now.
- Integrity checks are "when required" (boto3 >= 1.36 otherwise sends CRC32 trailers that some
  non-AWS servers refuse); uploads ask for an explicit SHA-256 checksum instead, which the server
  verifies for each request or part.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import io
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import boto3
import boto3.exceptions
import botocore.exceptions
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from pipeline.errors import StorageError
from pipeline.storage.base import IMMUTABLE, NO_CACHE, ObjectInfo

log = logging.getLogger(__name__)

MiB = 1 << 20
LIFECYCLE_RULE_ID = "storymedia-abort-incomplete-multipart-uploads"

_T = TypeVar("_T")
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_DENIED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
           "ExpiredToken", "TokenRefreshRequired", "AllAccessDisabled", "InvalidSecurity"}
_BUSY = {"503", "SlowDown", "ServiceUnavailable", "RequestTimeout", "InternalError", "500"}


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
    ) -> None:
        if not bucket or "/" in bucket:
            raise StorageError(f"invalid bucket name {bucket!r}")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.public_base = public_base.rstrip("/") + "/" if public_base else None
        self.presign_expiry = presign_expiry
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
        try:
            session = boto3.session.Session()
            self._client: Any = session.client("s3", endpoint_url=endpoint_url, region_name=region,
                                               config=config)
            presign_url = presign_endpoint_url or endpoint_url
            self._presigner: Any = (
                self._client if presign_url == endpoint_url
                else session.client("s3", endpoint_url=presign_url, region_name=region, config=config))
        except (botocore.exceptions.BotoCoreError, ValueError) as exc:
            raise StorageError(f"cannot set up the S3 client for {self.url}: {exc}") from exc
        self.endpoint = str(self._client.meta.endpoint_url)

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
    def _fail(self, exc: BaseException, action: str, key: str | None = None) -> NoReturn:
        raise StorageError(self._reason(exc, action, key)) from exc

    def _reason(self, exc: BaseException, action: str, key: str | None) -> str:
        what = f"{action} {key}" if key else action
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
        try:
            return call()
        except StorageError:
            raise
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError,
                boto3.exceptions.Boto3Error) as exc:
            self._fail(exc, action, key)

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
            self._client.upload_file(str(path), self.bucket, object_key, ExtraArgs=extra,
                                     Config=self.transfer_config)
        except FileNotFoundError as exc:
            raise StorageError(f"cannot upload {key}: {path} does not exist") from exc
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError,
                boto3.exceptions.Boto3Error) as exc:
            self._fail(exc, "cannot upload", key)
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

    def delete(self, key: str) -> None:
        object_key = self._key(key)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=object_key)
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                return
            self._fail(exc, "cannot delete", key)
        except botocore.exceptions.BotoCoreError as exc:
            self._fail(exc, "cannot delete", key)

    # -- reads ---------------------------------------------------------------------------------
    def head(self, key: str) -> ObjectInfo | None:
        object_key = self._key(key)
        try:
            response = self._client.head_object(Bucket=self.bucket, Key=object_key)
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                return None
            self._fail(exc, "cannot look up", key)
        except botocore.exceptions.BotoCoreError as exc:
            self._fail(exc, "cannot look up", key)
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
            self._client.download_file(self.bucket, object_key, tmp_name, Config=self.transfer_config)
            os.replace(tmp, path)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError,
                boto3.exceptions.Boto3Error) as exc:
            self._fail(exc, "cannot download", key)
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
        seconds ago (a worker killed mid-upload cannot); returns how many."""
        aborted = 0
        for key, upload_id in self.incomplete_uploads(prefix, older_than):
            object_key = self._key(key)
            try:
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=object_key,
                                                    UploadId=upload_id)
            except botocore.exceptions.ClientError as exc:
                if _code(exc) in {"NoSuchUpload", "404"}:
                    continue
                self._fail(exc, "cannot abort the upload of", key)
            except botocore.exceptions.BotoCoreError as exc:
                self._fail(exc, "cannot abort the upload of", key)
            aborted += 1
        return aborted

    def ensure_bucket(self) -> None:
        """Create the bucket if missing, and make sure abandoned multipart uploads expire.

        The bucket stays private (no ACL, no policy). Servers that refuse lifecycle rules only
        earn a warning: ``abort_incomplete_uploads()`` does the same job when run.
        """
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as exc:
            if _code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
                self._fail(exc, "cannot check bucket", self.bucket)
            self._create_bucket()
        except botocore.exceptions.BotoCoreError as exc:
            self._fail(exc, "cannot check bucket", self.bucket)
        self._ensure_lifecycle()

    def _create_bucket(self) -> None:
        args: dict[str, Any] = {"Bucket": self.bucket}
        region = self._client.meta.region_name
        if region and region not in ("us-east-1", "aws-global"):
            args["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self._client.create_bucket(**args)
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                return
            self._fail(exc, "cannot create bucket", self.bucket)
        except botocore.exceptions.BotoCoreError as exc:
            self._fail(exc, "cannot create bucket", self.bucket)

    def _ensure_lifecycle(self) -> None:
        rule = {"ID": LIFECYCLE_RULE_ID, "Status": "Enabled", "Filter": {"Prefix": ""},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}
        try:
            try:
                rules = list(self._client.get_bucket_lifecycle_configuration(
                    Bucket=self.bucket).get("Rules", []))
            except botocore.exceptions.ClientError as exc:
                if _code(exc) != "NoSuchLifecycleConfiguration":
                    raise
                rules = []
            if any(r.get("ID") == LIFECYCLE_RULE_ID for r in rules):
                return
            # The call replaces the whole configuration: keep the operators' own rules.
            self._client.put_bucket_lifecycle_configuration(
                Bucket=self.bucket, LifecycleConfiguration={"Rules": [*rules, rule]})
        except botocore.exceptions.ClientError as exc:
            log.warning("bucket %s: the object store refused the lifecycle rule that aborts"
                        " incomplete uploads (%s); run abort_incomplete_uploads() now and then",
                        self.bucket, _code(exc) or exc)
        except botocore.exceptions.BotoCoreError as exc:
            self._fail(exc, "cannot set the lifecycle rule of bucket", self.bucket)


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


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
