"""The storage seam under the registry: a tiny key/value interface with the two atomic
operations the control plane needs (create-only and compare-and-swap) and a lossless append.

Keys are ``/``-separated paths relative to the registry root (``models/churn/route.json``).
Two implementations: :class:`registry.store_local.LocalStore` (a directory; ``O_EXCL``-style
hard links, ``fcntl`` locks and atomic renames) and :class:`registry.store_s3.S3Store`
(s3fs's client; ``If-None-Match: *`` and ``If-Match: <etag>`` conditional writes).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse


class Store(Protocol):
    """What the registry needs from a storage backend."""

    url: str

    def read(self, key: str) -> bytes:
        """The object's bytes; ``FileNotFoundError`` when absent."""
        ...

    def read_many(self, keys: list[str]) -> dict[str, bytes]:
        """The bytes of each key that exists (absent keys are left out); S3 reads in parallel."""
        ...

    def read_tagged(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and a tag for :meth:`write_if`; None when absent."""
        ...

    def write(self, key: str, data: bytes) -> None:
        """Write (or replace) the whole object atomically: readers see old or new, never half."""
        ...

    def create(self, key: str, data: bytes) -> bool:
        """Write only if the key does not exist yet. False when it already existed."""
        ...

    def write_if(self, key: str, data: bytes, *, tag: str | None) -> bool:
        """Compare-and-swap: replace only if the object still has ``tag`` (None: must not
        exist). False when someone else wrote meanwhile."""
        ...

    def append(self, key: str, data: bytes) -> None:
        """Append ``data`` to the object; concurrent appends are never lost."""
        ...

    def exists(self, key: str) -> bool: ...

    def stamp(self, key: str) -> str | None:
        """A cheap token that changes whenever the object changes; None when absent."""
        ...

    def children(self, prefix: str) -> list[str]:
        """Names directly under ``prefix`` (files and folders), sorted; [] when none."""
        ...

    def keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``, relative to it, sorted."""
        ...


def normalize_url(location: str) -> str:
    """A registry URL: ``file:///abs/path`` for paths, ``s3://bucket/prefix`` unchanged.

    >>> normalize_url("s3://bucket/some/prefix/")
    's3://bucket/some/prefix'
    >>> normalize_url("file:///tmp/reg/")
    'file:///tmp/reg'
    """
    if location.startswith("file://"):
        path = location[len("file://") :]
        return "file://" + str(Path(path or "/").expanduser().resolve())
    if "://" in location:
        scheme, _, rest = location.partition("://")
        return f"{scheme.lower()}://{rest.strip('/')}"
    return "file://" + str(Path(location).expanduser().resolve())


def open_store(location: str, *, storage_options: dict[str, Any] | None = None) -> Store:
    """The backend for a registry URL or path."""
    from registry.errors import RegistryError

    url = normalize_url(location)
    parsed = urlparse(url)
    if parsed.scheme == "file":
        from registry.store_local import LocalStore

        return LocalStore(Path(parsed.path))
    if parsed.scheme in ("s3", "s3a"):
        from registry.store_s3 import S3Store

        return S3Store(url, storage_options=storage_options, env=os.environ)
    raise RegistryError(
        f"registry URL {location!r}: unsupported scheme {parsed.scheme!r}; "
        "expected a path, file:// or s3://"
    )
