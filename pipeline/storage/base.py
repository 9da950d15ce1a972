"""The storage interface every backend implements, what it returns, and the optional
capabilities (presigned URLs, upload clean-up, bucket set-up, locks, part uploads, appending) some
backends add."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from zlib_ng import zlib_ng

IMMUTABLE = "public, max-age=31536000, immutable"
"""Cache-Control for content-addressed objects (raws, renditions): their bytes never change."""
NO_CACHE = "no-cache"
"""Cache-Control for manifests and job records: always revalidate."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    bytes: int
    sha256: str
    content_type: str


@dataclass(frozen=True)
class StorageOptions:
    """What ``open_storage`` passes to an opener besides the URL; each backend uses its part."""

    public_base: str | None = None
    """Base URL editors fetch objects from (``public_url``); None: relative keys."""
    endpoint_url: str | None = None
    """S3: the server, when it is not AWS."""
    presign_endpoint_url: str | None = None
    """S3: the host browsers use with presigned URLs (default: ``endpoint_url``)."""
    region: str | None = None
    presign_expiry: int = 3600
    """S3: lifetime of a presigned URL in seconds."""
    multipart_bytes: int | None = None
    """S3: the size from which uploads go multipart, and the part size (None: 16 MiB)."""
    cors_origins: tuple[str, ...] = ()
    """S3: origins of the pages whose scripts read objects through presigned URLs (the editor's
    HLS player); ``ensure_bucket()`` lets them GET and HEAD. Empty: no CORS rule is set."""


@runtime_checkable
class Storage(Protocol):
    """A flat key -> bytes store. Keys use '/' and never come from user file names.

    Every write records the full-file SHA-256; ``put_file`` skips the upload when the key already
    holds the same SHA-256, so re-running work is cheap and harmless.
    """

    url: str
    """The storage URL this backend was opened from (``file:///...``, ``s3://...``)."""

    def put_file(self, key: str, path: Path, *, sha256: str, content_type: str,
                 cache_control: str = IMMUTABLE) -> bool:
        """Store a file; returns False when the same bytes were already there (skipped)."""

    def put_bytes(self, key: str, data: bytes, *, content_type: str,
                  cache_control: str = IMMUTABLE) -> bool:
        """Store bytes; same skip rule as ``put_file``."""

    def replace(self, key: str, data: bytes, *, content_type: str,
                cache_control: str = NO_CACHE) -> None:
        """Atomically replace ``key``: readers see the old or the new bytes, never a mix."""

    def create(self, key: str, data: bytes, *, content_type: str,
               cache_control: str = NO_CACHE) -> bool:
        """Write ``key`` only if it does not exist yet, atomically (a racing writer cannot slip in
        between the check and the write); False, and nothing written, when it exists."""

    def head(self, key: str) -> ObjectInfo | None:
        """Size, SHA-256 and type of ``key``, or None when absent."""

    def exists(self, key: str, sha256: str | None = None) -> bool:
        """True when ``key`` is stored (and, if given, holds exactly ``sha256``)."""

    def get_bytes(self, key: str) -> bytes:
        """The object's bytes; StorageError when absent."""

    def download(self, key: str, path: Path) -> None:
        """Copy an object to a local file."""

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under ``prefix``, sorted."""

    def delete(self, key: str) -> None:
        """Remove ``key``; a key that is not there is not an error."""

    def public_url(self, key: str) -> str:
        """The URL an editor uses for ``key`` (relative key when no public base is set)."""


# Optional capabilities: a backend that has one implements it; callers ask with ``isinstance``.

@runtime_checkable
class Presigning(Protocol):
    """Signs time-limited GET URLs, so an editor's browser can fetch a private object."""

    def presign(self, key: str, expires_in: int | None = None) -> str:
        """A GET URL for ``key`` valid for ``expires_in`` seconds (the backend's default if None)."""


@runtime_checkable
class UploadCleanup(Protocol):
    """Uploads that can be left half-done (S3 multipart) and the means to abort them."""

    def own_uploads(self, prefix: str = "") -> list[tuple[str, str]]:
        """Incomplete uploads under ``prefix`` that this object started: (key, upload id)."""

    def abort_own_uploads(self, prefix: str = "") -> int:
        """Abort this object's incomplete uploads under ``prefix``; returns how many."""

    def abort_upload(self, key: str, upload_id: str) -> bool:
        """Abort one upload by id; False when it is no longer there."""

    def incomplete_uploads(self, prefix: str = "", older_than: float = 0.0) -> list[tuple[str, str]]:
        """Everyone's incomplete uploads under ``prefix`` started ``older_than`` seconds ago or
        earlier: (key, upload id)."""

    def abort_incomplete_uploads(self, prefix: str = "", older_than: float = 0.0) -> int:
        """Abort everyone's incomplete uploads under ``prefix`` at least ``older_than`` seconds
        old; returns how many."""


@runtime_checkable
class BucketSetup(Protocol):
    """A store that must be prepared before the first write (create the bucket, set its rules)."""

    def ensure_bucket(self) -> None:
        """Make the store ready; safe to call again."""


@runtime_checkable
class Locking(Protocol):
    """Named locks between processes that share the store."""

    def exclusive(self, name: str, timeout: float = 600.0) -> AbstractContextManager[None]:
        """Hold the lock ``name`` for the ``with`` block; StorageError after ``timeout`` seconds
        of waiting for another holder."""


@dataclass(frozen=True)
class UploadedPart:
    """One part of a part upload, as ``complete_parts`` needs it back."""

    number: int
    tag: str
    """What the store names the part by (S3: its ETag)."""
    checksum: str = ""
    """S3: the part's checksum (base64: a CRC-32, or a SHA-256 for uploads started with it) that
    the server verified; empty where the store has none."""


PART_CHECKSUMS = ("crc32", "sha256")
"""What a part upload's parts carry for the store to check each one's bytes against: ``crc32``
(cheap; the caller checks the whole object's SHA-256 itself before completing) or ``sha256``
(what uploads started before CRC-32 parts carry)."""


def crc32(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """zlib's CRC-32 of ``data``, continuing from ``value``: zlib-ng's (carry-less multiplication:
    0.10 s per GiB where zlib 1.2's takes 0.37, on the service's busiest thread)."""
    return zlib_ng.crc32(data, value)


def file_crc32(path: Path) -> int:
    """The CRC-32 of the file at ``path`` (a part's checksum), read a MiB at a time."""
    crc = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            crc = crc32(chunk, crc)
    return crc


@runtime_checkable
class PartUploads(Protocol):
    """Objects assembled from parts sent one at a time, by any process sharing the store (S3
    multipart uploads): what a resumable upload needs. Every part but the last must have at least
    ``min_part_bytes`` bytes; numbers run from 1 to 10,000."""

    min_part_bytes: int

    def start_parts(self, key: str, *, content_type: str = "application/octet-stream", sha256: str = "",
                    cache_control: str = "", part_checksum: str = "crc32") -> str:
        """Start assembling ``key``; returns the upload id the other calls take. ``sha256`` and
        ``cache_control``, when given, are recorded on the assembled object as ``put_file`` does
        (the caller checks the bytes against ``sha256`` before completing). ``part_checksum``: one
        of ``PART_CHECKSUMS``, what every part of this upload carries."""

    def put_part(self, key: str, upload_id: str, number: int, path: Path, *, part_checksum: str = "crc32",
                 crc32: int | None = None) -> UploadedPart:
        """Send the file at ``path`` as part ``number`` (sending a number again replaces it), with
        the upload's ``part_checksum``; ``crc32``: the file's CRC-32 when the caller computed it
        while writing the file (else it is computed from the file). StorageError with code
        ``no-such-upload`` when the upload is gone (aborted, expired)."""

    def complete_parts(self, key: str, upload_id: str, parts: Sequence[UploadedPart]) -> None:
        """Assemble ``key`` from ``parts`` in the order given; the upload id is spent."""

    def abort_upload(self, key: str, upload_id: str) -> bool:
        """Drop the upload and its parts; False when it was no longer there."""

    def copy(self, source: str, target: str, *, sha256: str, content_type: str,
             cache_control: str = IMMUTABLE) -> bool:
        """Copy ``source`` to ``target`` inside the store (server-side, any size), recording
        ``sha256``; False when ``target`` already holds those bytes (skipped)."""

    def read_chunks(self, key: str) -> Iterator[bytes]:
        """The object's bytes a chunk at a time, never whole in memory."""


@runtime_checkable
class Appending(Protocol):
    """Objects that grow in place (a local folder): a resumable upload appends to one object."""

    def open_append(self, key: str) -> BinaryIO:
        """The object ``key`` open for appending (created empty when absent), positioned at its
        end; the caller closes it. What is written is in the object at once (not atomic)."""
