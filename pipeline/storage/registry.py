"""Storage backends by URL scheme: ``register(scheme, opener)`` and ``open_storage(url)``.

A backend registers an opener, a function from the URL and the :class:`StorageOptions` to a
:class:`~pipeline.storage.base.Storage`. The built-in ones:

- ``file:///path`` (or a plain path) -> ``LocalStorage``, the embedded default
- ``memory://``                      -> ``MemoryStorage``, unit tests only
- ``s3://bucket/prefix``             -> ``S3Storage``, the cluster's store; its module (and so
  boto3) is imported when an ``s3://`` URL is opened, never by a local run

An unknown scheme is an error at start-up, never a silent ``None``.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlparse

from pipeline.errors import StorageError
from pipeline.storage.base import Storage, StorageOptions
from pipeline.storage.local import open_local
from pipeline.storage.memory import open_memory

Opener = Callable[[str, StorageOptions], Storage]
"""Builds a backend from its URL (scheme included) and the options."""

_openers: dict[str, Opener] = {}
_examples: dict[str, str] = {}


def register(scheme: str, opener: Opener, *, example: str | None = None) -> None:
    """Open URLs of ``scheme`` (``""`` for a plain path) with ``opener``. ``example`` is shown to
    whoever gives an unknown scheme. Registering a scheme again replaces its opener."""
    scheme = scheme.lower()
    _openers[scheme] = opener
    if example is not None:
        _examples[scheme] = example


def unregister(scheme: str) -> None:
    """Forget ``scheme`` (a test's own backend); an unknown scheme is not an error."""
    _openers.pop(scheme.lower(), None)
    _examples.pop(scheme.lower(), None)


def open_storage(url: str, public_base: str | None = None, *, endpoint_url: str | None = None,
                 presign_endpoint_url: str | None = None, region: str | None = None,
                 presign_expiry: int = 3600, multipart_bytes: int | None = None,
                 cors_origins: tuple[str, ...] = ()) -> Storage:
    """Open the storage backend named by ``url``.

    The keyword arguments apply to ``s3://`` only: ``endpoint_url`` for an S3 server other than
    AWS, ``presign_endpoint_url`` for the host browsers use with presigned URLs (default: the
    endpoint), ``presign_expiry`` in seconds, and ``multipart_bytes`` for both the size from
    which uploads go multipart and the part size (default 16 MiB), ``cors_origins`` for the pages
    that read objects with scripts (set on the bucket by ``ensure_bucket``). Credentials come from boto3's
    usual chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, profiles, roles).
    """
    scheme = urlparse(url).scheme
    opener = _openers.get(scheme)
    if opener is None:
        raise StorageError(f"unknown storage URL scheme {scheme!r} in {url!r}"
                           f" (use {_one_of(list(_examples.values()))})")
    options = StorageOptions(public_base=public_base, endpoint_url=endpoint_url,
                             presign_endpoint_url=presign_endpoint_url, region=region,
                             presign_expiry=presign_expiry, multipart_bytes=multipart_bytes,
                             cors_origins=cors_origins)
    return opener(url, options)


def _one_of(examples: list[str]) -> str:
    """'a, b or c'."""
    return " or ".join([", ".join(examples[:-1]), examples[-1]]) if len(examples) > 1 else "".join(examples)


def _open_s3(url: str, options: StorageOptions) -> Storage:
    from pipeline.storage.s3 import open_s3  # boto3 is imported here, for an s3:// URL only

    return open_s3(url, options)


register("", open_local)
register("file", open_local, example="file:///path")
register("memory", open_memory, example="memory://")
register("s3", _open_s3, example="s3://bucket/prefix")
