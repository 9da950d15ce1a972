"""Raw originals: opened once, without following links, hashed, and kept in the private store.

A story file names its assets by paths inside the story's folder. Checking a path and then opening
it later lets a file swapped for a symbolic link in between be followed out of the folder (to a
worker's own files, say). So every component of the path is opened relative to the one before
with ``O_NOFOLLOW``, the file is hashed from that one descriptor, and the bytes stored in the
private area (``raw/<sha[:2]>/<sha>``, content-addressed) are the bytes that were hashed: from then
on every executor works on the stored copy, never on the producer's path again.

Raws keep their camera metadata (GPS position, serial numbers): they go to the private area only,
never to the public one a CDN serves.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import InvalidStory
from pipeline.model.keys import raw_key
from pipeline.storage import Storage

_CHUNK = 1 << 20
_DIRECTORY = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def open_inside(root: Path, relative: str, name: str) -> int:
    """A read-only descriptor of the regular file ``root/relative``, refusing symbolic links at
    every step below ``root`` (and FIFOs, devices, folders). ``name`` labels the errors."""
    parts = [part for part in relative.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        raise InvalidStory(f"{name}: {relative} is not a path inside the story folder")
    try:
        folder = os.open(root, _DIRECTORY)
    except OSError as exc:
        raise InvalidStory(f"{name}: cannot open the story folder {root} ({exc.strerror})") from exc
    try:
        for part in parts[:-1]:
            try:
                inner = os.open(part, _DIRECTORY, dir_fd=folder)
            except OSError as exc:
                raise InvalidStory(_refusal(name, relative, exc)) from exc
            os.close(folder)
            folder = inner
        try:
            fd = os.open(parts[-1], _FILE, dir_fd=folder)
        except OSError as exc:
            raise InvalidStory(_refusal(name, relative, exc)) from exc
    finally:
        os.close(folder)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InvalidStory(f"{name}: {relative} is not a regular file")
    os.set_blocking(fd, True)
    return fd


def _refusal(name: str, relative: str, exc: OSError) -> str:
    import errno

    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return (f"{name}: {relative} is (or passes through) a symbolic link; name the file itself,"
                " inside the story folder")
    if exc.errno == errno.ENOENT:
        return f"{name}: {relative} does not exist"
    return f"{name}: cannot open {relative} ({exc.strerror})"


@dataclass(frozen=True)
class Original:
    sha256: str
    bytes: int
    stored: bool
    """True when the bytes were sent to the store (False: the same content was already there)."""


def store_original(storage: Storage, root: Path, relative: str, name: str,
                   content_type: str = "application/octet-stream") -> Original:
    """Open ``root/relative`` once (no links), hash it, and store those bytes as ``raw/<sha>``.

    The upload reads the same open file (``/proc/self/fd``), not the path: a name swapped after the
    open changes nothing."""
    fd = open_inside(root, relative, name)
    try:
        digest = hashlib.sha256()
        size = 0
        while chunk := os.read(fd, _CHUNK):
            digest.update(chunk)
            size += len(chunk)
        sha = digest.hexdigest()
        os.lseek(fd, 0, os.SEEK_SET)
        stored = storage.put_file(raw_key(sha), Path(f"/proc/self/fd/{fd}"), sha256=sha,
                                  content_type=content_type)
    finally:
        os.close(fd)
    return Original(sha256=sha, bytes=size, stored=stored)
