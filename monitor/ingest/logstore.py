"""Finding prediction and feedback segments in the log store (local path or fsspec URL).

A segment is known by its ``key``, its path relative to the log store's root
(``predictions/model=m/date=d/w-000001.parquet``), and its content ``fingerprint``; so a
store that is copied or moved (new root, new modification times) is not read again.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

_MODEL_DIR = re.compile(r"(?:^|/)model=([^/]+)/")


@dataclass(frozen=True)
class Segment:
    """One file under ``<logs>/<kind>/model=<name>/date=<day>/``."""

    path: str
    kind: str
    model: str | None
    size: int
    mtime_ns: int
    key: str = ""  # path relative to the log store's root, "/"-separated
    fingerprint: str | None = None  # LogStore.fingerprint, once read

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", relative_key(self.path, self.kind))

    @property
    def is_parquet(self) -> bool:
        return self.path.endswith(".parquet")


def _is_temporary(name: str) -> bool:
    # writers publish with temp + rename: half-written files are hidden or suffixed
    return name.startswith((".", "_")) or name.endswith((".tmp", ".partial", ".crc"))


class LogStore:
    """Lists segments; hands out a local path to read each one with DuckDB."""

    def __init__(self, url: str, *, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self.local_root: Path | None = None
        if url.startswith("file://"):
            self.local_root = Path(url[len("file://") :])
        elif "://" not in url:
            self.local_root = Path(url)
        # no fsspec listing cache: segments appear between passes, and a cached listing of
        # their folder makes a new segment "not found" when it is opened (s3fs)
        self.storage_options = {"use_listings_cache": False, **(storage_options or {})}

    def list(self, kind: str) -> list[Segment]:
        """Every non-temporary file of ``kind``, oldest write first."""
        if self.local_root is not None:
            found = list(self._list_local(kind))
        else:
            found = list(self._list_remote(kind))
        found.sort(key=lambda s: (s.mtime_ns, s.path))
        return found

    def _list_local(self, kind: str) -> Iterator[Segment]:
        assert self.local_root is not None
        root = self.local_root / kind
        if not root.is_dir():
            return
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                if _is_temporary(name):
                    continue
                full = os.path.join(dirpath, name)
                try:
                    st = os.stat(full)
                except FileNotFoundError:
                    continue  # removed between listing and stat
                rel = os.path.relpath(full, root).replace(os.sep, "/")
                yield Segment(full, kind, _model_of(rel), st.st_size, st.st_mtime_ns,
                              key=f"{kind}/{rel}")  # fmt: skip

    def _list_remote(self, kind: str) -> Iterator[Segment]:
        import fsspec

        fs, root = fsspec.core.url_to_fs(f"{self.url}/{kind}", **self.storage_options)
        if not fs.exists(root):
            return
        for path, info in fs.find(root, detail=True).items():
            name = path.rsplit("/", 1)[-1]
            if _is_temporary(name) or info.get("type") == "directory":
                continue
            mtime = info.get("LastModified") or info.get("mtime") or info.get("created") or 0
            stamp = (
                int(mtime.timestamp() * 1e9)
                if hasattr(mtime, "timestamp")
                else int(float(mtime) * 1e9)
            )
            rel = path[len(root) :].lstrip("/")
            protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
            yield Segment(f"{protocol}://{path}", kind, _model_of(rel), int(info["size"]), stamp,
                          key=f"{kind}/{rel}")  # fmt: skip

    def fingerprint(self, segment: Segment) -> str:
        """The content fingerprint of a segment: its size and a hash of its last
        ``FINGERPRINT_TAIL_BYTES`` (a Parquet footer: schema, row groups, column statistics),
        read with one ranged request on an object store."""
        tail = min(segment.size, FINGERPRINT_TAIL_BYTES)
        if self.local_root is not None:
            with open(segment.path, "rb") as f:
                f.seek(segment.size - tail)
                data = f.read(tail)
        else:
            import fsspec

            with fsspec.open(segment.path, "rb", **self.storage_options) as f:
                f.seek(segment.size - tail)
                data = f.read(tail)
        digest = hashlib.sha256(data).hexdigest()[:32]
        return f"{segment.size}:{digest}"

    @contextmanager
    def local_copy(self, segment: Segment) -> Iterator[str]:
        """A local file path with the segment's bytes (the file itself when local)."""
        if self.local_root is not None:
            yield segment.path
            return
        import fsspec

        tmpdir = tempfile.mkdtemp(prefix="mlgate-seg-")
        try:
            target = os.path.join(tmpdir, "segment.parquet")
            with fsspec.open(segment.path, "rb", **self.storage_options) as src:
                with open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            yield target
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)


FINGERPRINT_TAIL_BYTES = 64 * 1024


def relative_key(path: str, kind: str) -> str:
    """A segment's key from any path of it (absolute, URL, or already relative): from its
    ``<kind>/model=`` part on; used to migrate keys stored as absolute paths.

    >>> relative_key("/old/home/logs/predictions/model=m/date=d/w-1.parquet", "predictions")
    'predictions/model=m/date=d/w-1.parquet'
    >>> relative_key("s3://b/logs/feedback/model=m/date=d/w-1.parquet", "feedback")
    'feedback/model=m/date=d/w-1.parquet'
    """
    normal = path.replace(os.sep, "/")
    at = normal.rfind(f"/{kind}/model=")
    if at >= 0:
        return normal[at + 1 :]
    return normal if normal.startswith(f"{kind}/") else normal.lstrip("/")


def _model_of(relative: str) -> str | None:
    m = _MODEL_DIR.search(relative if relative.startswith("model=") else "/" + relative)
    return m.group(1) if m else None
