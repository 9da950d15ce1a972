"""The storage interface every backend implements, and what it returns."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

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
