"""Object storage behind one small interface, chosen by URL scheme.

- ``file:///path`` (or a plain path) -> :class:`LocalStorage`, the embedded default
- ``memory://``                      -> :class:`MemoryStorage`, unit tests only
- ``s3://bucket/prefix``             -> :class:`S3Storage`, the cluster's store (boto3)

An unknown scheme is an error at start-up, never a silent ``None``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from pipeline.errors import StorageError
from pipeline.storage.base import IMMUTABLE, NO_CACHE, ObjectInfo, Storage
from pipeline.storage.local import LocalStorage, file_sha256
from pipeline.storage.memory import MemoryStorage
from pipeline.storage.s3 import S3Storage

__all__ = ["IMMUTABLE", "NO_CACHE", "LocalStorage", "MemoryStorage", "ObjectInfo", "S3Storage",
           "Storage", "file_sha256", "open_storage"]


def open_storage(url: str, public_base: str | None = None, *, endpoint_url: str | None = None,
                 presign_endpoint_url: str | None = None, region: str | None = None,
                 presign_expiry: int = 3600, multipart_bytes: int | None = None) -> Storage:
    """Open the storage backend named by ``url``.

    The keyword arguments apply to ``s3://`` only: ``endpoint_url`` for an S3 server other than
    AWS, ``presign_endpoint_url`` for the host browsers use with presigned URLs (default: the
    endpoint), ``presign_expiry`` in seconds, and ``multipart_bytes`` for both the size from
    which uploads go multipart and the part size (default 16 MiB). Credentials come from boto3's
    usual chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, profiles, roles).
    """
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        path = Path(unquote(parsed.path) if parsed.scheme else url)
        return LocalStorage(path, public_base)
    if parsed.scheme == "memory":
        return MemoryStorage()
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise StorageError(f"no bucket in storage URL {url!r} (use s3://bucket/prefix)")
        multipart = {} if multipart_bytes is None else {"multipart_threshold": multipart_bytes,
                                                         "multipart_chunksize": multipart_bytes}
        return S3Storage(parsed.netloc, unquote(parsed.path).strip("/"), endpoint_url=endpoint_url,
                         region=region, public_base=public_base,
                         presign_endpoint_url=presign_endpoint_url, presign_expiry=presign_expiry,
                         **multipart)
    raise StorageError(f"unknown storage URL scheme {parsed.scheme!r} in {url!r}"
                       " (use file:///path, memory:// or s3://bucket/prefix)")
