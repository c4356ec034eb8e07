"""A registry on a local (or NFS-with-locks) directory.

Create-only writes go to a temporary file that is then hard-linked to its final name
(``link`` fails when the name exists, like ``O_EXCL``, and the content is complete the moment
it appears). Compare-and-swap and appends hold an ``fcntl`` lock on a sidecar ``.lock`` file;
replacements are a temporary file plus an atomic ``rename``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator


class LocalStore:
    """Store rooted at a directory (created on first write)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = "file://" + str(root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def read(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def read_many(self, keys: list[str]) -> dict[str, bytes]:
        out = {}
        for key in keys:
            try:
                out[key] = self.read(key)
            except FileNotFoundError:
                continue
        return out

    def read_tagged(self, key: str) -> tuple[bytes, str] | None:
        try:
            data = self.read(key)
        except FileNotFoundError:
            return None
        return data, hashlib.sha256(data).hexdigest()

    def _temp_with(self, path: Path, data: bytes) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            os.unlink(name)
            raise
        return Path(name)

    def write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = self._temp_with(path, data)
        os.replace(tmp, path)

    def create(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        tmp = self._temp_with(path, data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        return True

    @contextlib.contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def write_if(self, key: str, data: bytes, *, tag: str | None) -> bool:
        path = self._path(key)
        with self._locked(path):
            current = self.read_tagged(key)
            if (current[1] if current else None) != tag:
                return False
            self.write(key, data)
        return True

    def append(self, key: str, data: bytes) -> None:
        path = self._path(key)
        with self._locked(path):
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def stamp(self, key: str) -> str | None:
        try:
            st = self._path(key).stat()
        except FileNotFoundError:
            return None
        return f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"

    def children(self, prefix: str) -> list[str]:
        try:
            names = os.listdir(self._path(prefix))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(n for n in names if not n.startswith("."))

    def keys(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        out: list[str] = []
        for dirpath, _dirs, files in os.walk(base):
            rel = Path(dirpath).relative_to(base)
            out.extend(str(rel / f) if str(rel) != "." else f for f in files)
        return sorted(out)
