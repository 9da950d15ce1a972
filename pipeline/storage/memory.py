"""MemoryStorage: a dict. For unit tests of pure logic only."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from pipeline.errors import StorageError
from pipeline.storage.base import IMMUTABLE, NO_CACHE, ObjectInfo, StorageOptions


class MemoryStorage:
    url = "memory://"

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.writes = 0

    def put_bytes(self, key: str, data: bytes, *, content_type: str,
                  cache_control: str = IMMUTABLE) -> bool:
        if self.exists(key, hashlib.sha256(data).hexdigest()):
            return False
        self.objects[key] = (data, content_type)
        self.writes += 1
        return True

    def put_file(self, key: str, path: Path, *, sha256: str, content_type: str,
                 cache_control: str = IMMUTABLE) -> bool:
        return self.put_bytes(key, path.read_bytes(), content_type=content_type)

    def replace(self, key: str, data: bytes, *, content_type: str,
                cache_control: str = NO_CACHE) -> None:
        self.objects[key] = (data, content_type)
        self.writes += 1

    def create(self, key: str, data: bytes, *, content_type: str,
               cache_control: str = NO_CACHE) -> bool:
        if key in self.objects:
            return False
        self.objects[key] = (data, content_type)
        self.writes += 1
        return True

    def head(self, key: str) -> ObjectInfo | None:
        if key not in self.objects:
            return None
        data, content_type = self.objects[key]
        return ObjectInfo(key, len(data), hashlib.sha256(data).hexdigest(), content_type)

    def exists(self, key: str, sha256: str | None = None) -> bool:
        info = self.head(key)
        return info is not None and (sha256 is None or info.sha256 == sha256)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.objects[key][0]
        except KeyError as exc:
            raise StorageError(f"{key} is not in the store") from exc

    def download(self, key: str, path: Path) -> None:
        data = self.get_bytes(key)
        try:
            path.write_bytes(data)
        except OSError as exc:
            raise StorageError(f"cannot download {key} to {path}: {exc.strerror or exc}") from exc

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    def list(self, prefix: str = "") -> Iterator[str]:
        return iter(sorted(k for k in self.objects if k.startswith(prefix)))

    def public_url(self, key: str) -> str:
        return key


def open_memory(url: str, options: StorageOptions) -> MemoryStorage:
    """``memory://``: a new, empty store each time."""
    return MemoryStorage()
