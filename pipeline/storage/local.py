"""LocalStorage: a folder on disk. The embedded run's default.

Keys map to paths under the root. Writes go to a temporary file in the same folder and are
renamed into place, so a reader never sees half a file and a crash leaves no partial object.
Part uploads keep their parts under ``.parts/<upload id>/`` (never listed) until they are
assembled; ``open_append`` grows an object in place (a resumable upload's bytes).
"""

from __future__ import annotations

import fcntl
import hashlib
import mimetypes
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from pipeline.errors import StorageError
from pipeline.storage.base import IMMUTABLE, NO_CACHE, ObjectInfo, StorageOptions, UploadedPart

_CHUNK = 1 << 20
_PARTS = ".parts"
"""The folder under the root that holds part uploads in progress (not a key: never listed)."""
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class LocalStorage:
    def __init__(self, root: Path, public_base: str | None = None) -> None:
        self.root = root.resolve()
        self.url = self.root.as_uri()
        self.public_base = public_base.rstrip("/") + "/" if public_base else None

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        if not key or key.startswith("/") or ".." in key.split("/") or "\\" in key:
            raise StorageError(f"invalid key {key!r}")
        return self.root / key

    def _write_atomic(self, key: str, writer: Callable[[BinaryIO], object], *,
                      exclusive: bool = False) -> bool:
        """Write to a temporary file beside the target, then move it into place: ``os.replace``, or
        with ``exclusive`` a hard link, which fails when the target exists (create-only, atomic).
        Returns False when ``exclusive`` and the target was already there."""
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
            try:
                with os.fdopen(fd, "wb") as handle:
                    writer(handle)
                os.chmod(tmp, 0o644)
                if not exclusive:
                    os.replace(tmp, target)
                    return True
                try:
                    os.link(tmp, target)
                except FileExistsError:
                    return False
                return True
            finally:
                Path(tmp).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot write {key}: {exc.strerror or exc}") from exc

    def put_file(self, key: str, path: Path, *, sha256: str, content_type: str,
                 cache_control: str = IMMUTABLE) -> bool:
        if self.exists(key, sha256):
            return False

        def copy(handle: BinaryIO) -> None:
            with path.open("rb") as source:
                shutil.copyfileobj(source, handle, _CHUNK)

        self._write_atomic(key, copy)
        return True

    def put_bytes(self, key: str, data: bytes, *, content_type: str,
                  cache_control: str = IMMUTABLE) -> bool:
        if self.exists(key, hashlib.sha256(data).hexdigest()):
            return False
        self._write_atomic(key, lambda handle: handle.write(data))
        return True

    def replace(self, key: str, data: bytes, *, content_type: str,
                cache_control: str = NO_CACHE) -> None:
        self._write_atomic(key, lambda handle: handle.write(data))

    def create(self, key: str, data: bytes, *, content_type: str,
               cache_control: str = NO_CACHE) -> bool:
        return self._write_atomic(key, lambda handle: handle.write(data), exclusive=True)

    @contextmanager
    def exclusive(self, name: str, timeout: float = 600.0) -> Iterator[None]:
        """Hold the lock file ``locks/<name>.lock`` (``flock``: released when the process ends,
        however it ends); StorageError after ``timeout`` seconds of waiting for another holder."""
        path = self._path(f"locks/{name}.lock")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = path.open("a")
        except OSError as exc:
            raise StorageError(f"cannot open the lock {path}: {exc.strerror or exc}") from exc
        with handle:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StorageError(f"another run holds {name} for more than {timeout:.0f} s;"
                                           " wait for it to finish, then run again") from None
                    time.sleep(0.1)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            size = path.stat().st_size
            sha = file_sha256(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read {key}: {exc.strerror or exc}") from exc
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return ObjectInfo(key=key, bytes=size, sha256=sha, content_type=content_type)

    def exists(self, key: str, sha256: str | None = None) -> bool:
        path = self._path(key)
        if sha256 is None:
            return path.is_file()
        info = self.head(key)
        return info is not None and info.sha256 == sha256

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise StorageError(f"{key} is not in the store") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {key}: {exc.strerror or exc}") from exc

    def download(self, key: str, path: Path) -> None:
        source = self._path(key)
        try:
            shutil.copyfile(source, path)
        except OSError as exc:
            if not source.is_file():
                raise StorageError(f"{key} is not in the store") from exc
            raise StorageError(f"cannot download {key} to {path}: {exc.strerror or exc}") from exc

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete {key}: {exc.strerror or exc}") from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        keys = []
        # Walk from the prefix's folder, not the whole store (the webhook sender lists a small
        # folder every second beside thousands of renditions).
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root / folder if folder and ".." not in folder.split("/") else self.root
        for dirpath, dirs, files in os.walk(start):
            if dirpath == str(self.root) and _PARTS in dirs:
                dirs.remove(_PARTS)
            for name in files:
                if name.startswith(".tmp-"):
                    continue
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return iter(sorted(keys))

    def public_url(self, key: str) -> str:
        return f"{self.public_base}{key}" if self.public_base else key

    # part uploads (PartUploads) and appending (Appending) --------------------------------------

    min_part_bytes = 1

    def _parts_dir(self, key: str, upload_id: str) -> Path:
        """The folder of a part upload of ``key``; StorageError (no-such-upload) when it is gone."""
        folder = self.root / _PARTS / upload_id
        try:
            started_for = (folder / "key").read_text("utf-8") if _UPLOAD_ID.fullmatch(upload_id) else None
        except FileNotFoundError:
            started_for = None
        except OSError as exc:
            raise StorageError(f"cannot read the upload of {key}: {exc.strerror or exc}") from exc
        if started_for != key:
            raise StorageError(f"no upload {upload_id} of {key} (completed, aborted or expired)",
                               code="no-such-upload")
        return folder

    def start_parts(self, key: str, *, content_type: str = "application/octet-stream", sha256: str = "",
                    cache_control: str = "", part_checksum: str = "crc32") -> str:
        self._path(key)
        upload_id = uuid.uuid4().hex
        folder = self.root / _PARTS / upload_id
        try:
            folder.mkdir(parents=True)
            (folder / "key").write_text(key, "utf-8")
        except OSError as exc:
            raise StorageError(f"cannot start an upload of {key}: {exc.strerror or exc}") from exc
        return upload_id

    def put_part(self, key: str, upload_id: str, number: int, path: Path, *, part_checksum: str = "crc32",
                 crc32: int | None = None) -> UploadedPart:
        if not 1 <= number <= 10_000:
            raise StorageError(f"part number {number} of {key} is not between 1 and 10000")
        folder = self._parts_dir(key, upload_id)
        digest = hashlib.sha256()
        try:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as handle, path.open("rb") as source:
                    while chunk := source.read(_CHUNK):
                        digest.update(chunk)
                        handle.write(chunk)
                os.replace(tmp, folder / f"{number:05d}")
            finally:
                Path(tmp).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot store part {number} of {key}: {exc.strerror or exc}") from exc
        return UploadedPart(number=number, tag=digest.hexdigest())

    def complete_parts(self, key: str, upload_id: str, parts: Sequence[UploadedPart]) -> None:
        folder = self._parts_dir(key, upload_id)
        numbers = [part.number for part in parts]
        if not parts or numbers != sorted(set(numbers)):
            raise StorageError(f"cannot assemble {key}: the parts must be given once each, in order")

        def assemble(handle: BinaryIO) -> None:
            for part in parts:
                digest = hashlib.sha256()
                with (folder / f"{part.number:05d}").open("rb") as source:
                    while chunk := source.read(_CHUNK):
                        digest.update(chunk)
                        handle.write(chunk)
                if digest.hexdigest() != part.tag:
                    raise StorageError(f"cannot assemble {key}: part {part.number} is not the one sent")

        try:
            self._write_atomic(key, assemble)
        except FileNotFoundError as exc:
            raise StorageError(f"cannot assemble {key}: a part was never sent") from exc
        shutil.rmtree(folder, ignore_errors=True)

    def abort_upload(self, key: str, upload_id: str) -> bool:
        try:
            folder = self._parts_dir(key, upload_id)
        except StorageError as exc:
            if exc.code == "no-such-upload":
                return False
            raise
        shutil.rmtree(folder, ignore_errors=True)
        return True

    def copy(self, source: str, target: str, *, sha256: str, content_type: str,
             cache_control: str = IMMUTABLE) -> bool:
        path = self._path(source)
        if not path.is_file():
            raise StorageError(f"{source} is not in the store")
        return self.put_file(target, path, sha256=sha256, content_type=content_type,
                             cache_control=cache_control)

    def read_chunks(self, key: str) -> Iterator[bytes]:
        try:
            with self._path(key).open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    yield chunk
        except FileNotFoundError as exc:
            raise StorageError(f"{key} is not in the store") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {key}: {exc.strerror or exc}") from exc

    def open_append(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = path.open("ab")
        except OSError as exc:
            raise StorageError(f"cannot open {key} for appending: {exc.strerror or exc}") from exc
        handle.seek(0, os.SEEK_END)
        return handle


def open_local(url: str, options: StorageOptions) -> LocalStorage:
    """``file:///path`` or a plain path."""
    parsed = urlparse(url)
    path = Path(unquote(parsed.path) if parsed.scheme else url)
    return LocalStorage(path, options.public_base)
