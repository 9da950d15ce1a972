"""Object storage behind one small interface, chosen by URL scheme.

- ``file:///path`` (or a plain path) -> :class:`LocalStorage`, the embedded default
- ``memory://``                      -> :class:`MemoryStorage`, unit tests only
- ``s3://bucket/prefix``             -> ``S3Storage`` (arrives with the cluster)

An unknown scheme is an error at start-up, never a silent ``None``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from pipeline.errors import StorageError
from pipeline.storage.base import IMMUTABLE, NO_CACHE, ObjectInfo, Storage
from pipeline.storage.local import LocalStorage, file_sha256
from pipeline.storage.memory import MemoryStorage

__all__ = ["IMMUTABLE", "NO_CACHE", "LocalStorage", "MemoryStorage", "ObjectInfo", "Storage",
           "file_sha256", "open_storage"]


def open_storage(url: str, public_base: str | None = None) -> Storage:
    """Open the storage backend named by ``url``."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        path = Path(unquote(parsed.path) if parsed.scheme else url)
        return LocalStorage(path, public_base)
    if parsed.scheme == "memory":
        return MemoryStorage()
    raise StorageError(f"unknown storage URL scheme {parsed.scheme!r} in {url!r}"
                       " (use file:///path; s3:// comes with the cluster)")
