"""Object storage behind one small interface, chosen by URL scheme (see :mod:`.registry`).

- ``file:///path`` (or a plain path) -> :class:`LocalStorage`, the embedded default
- ``memory://``                      -> :class:`MemoryStorage`, unit tests only
- ``s3://bucket/prefix``             -> ``S3Storage``, the cluster's store (boto3), imported from
  :mod:`pipeline.storage.s3` and only when an ``s3://`` URL is opened

Optional capabilities (:class:`Presigning`, :class:`UploadCleanup`, :class:`BucketSetup`,
:class:`Locking`, :class:`PartUploads`, :class:`Appending`) are protocols: ask
``isinstance(storage, Presigning)``.
"""

from __future__ import annotations

from pipeline.storage.base import (
    IMMUTABLE,
    NO_CACHE,
    Appending,
    BucketSetup,
    Locking,
    ObjectInfo,
    PartUploads,
    Presigning,
    Storage,
    StorageOptions,
    UploadCleanup,
    UploadedPart,
)
from pipeline.storage.local import LocalStorage, file_sha256
from pipeline.storage.memory import MemoryStorage
from pipeline.storage.registry import Opener, open_storage, register

__all__ = ["IMMUTABLE", "NO_CACHE", "Appending", "BucketSetup", "LocalStorage", "Locking", "MemoryStorage",
           "ObjectInfo", "Opener", "PartUploads", "Presigning", "Storage", "StorageOptions", "UploadCleanup",
           "UploadedPart", "file_sha256", "open_storage", "register"]

