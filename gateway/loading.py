"""``load_runtime``: from a registered version to a compiled ``Runtime``.

The one place where the gateway reads a model's artifact out of the registry: the artifact
(an estimator, or ONNX bytes) is loaded here and handed to ``gateway.runtimes.compile_model``,
which never sees the registry.

A version compiled by the numba backend is also saved, as arrays, in a local cache keyed by
the artifact's sha256 (``gateway.runtimes.numba.saved``): the next process that serves it
loads those arrays instead of the artifact, without importing scikit-learn and skops or
running skops' audited loader (~1.7 s of a worker's start on the reference forest).
``mlgate models register`` fills the cache too, so even the first ``mlgate serve`` after a
registration on that machine starts from it. The cache is a disposable, local copy of what
the artifact compiles to (like numba's own cache): an entry that cannot be read is compiled
again and replaced, and an unwritable directory only costs the speed-up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gateway.runtimes import UnsupportedModel, compile_model

if TYPE_CHECKING:
    from gateway.runtimes import Runtime
    from gateway.runtimes.numba.runtime import NumbaRuntime
    from registry import ModelVersion, Registry

logger = logging.getLogger(__name__)
CACHE_MAX_BYTES = 2 * 1024 * 1024 * 1024  # GatewaySettings.runtime_cache_max_bytes


def load_runtime(
    registry: Registry,
    model_version: ModelVersion,
    *,
    backend: str = "auto",
    fallback: bool = True,
    onnx_threads: int = 1,
    parallel_rows: int | None = None,
    cache_dir: str | None = None,
    cache_max_bytes: int = CACHE_MAX_BYTES,
) -> Runtime:
    """The runtime for a registered ``ModelVersion``.

    ``backend="auto"``: ``onnx`` flavor -> onnx; ``sklearn`` flavor -> numba, falling back to
    sklearn with a logged warning when numba cannot compile it (``fallback=False``: raise
    ``UnsupportedModel``). An explicit backend is used as asked (``onnx`` on an sklearn
    flavor exports it first). ``cache_dir``: where numba runtimes are saved and loaded from
    (None: no cache; see the module docstring), kept under ``cache_max_bytes``.
    """
    flavor = str(model_version.flavor)
    if backend == "auto":
        backend = "onnx" if flavor == "onnx" else "numba"
    cached = backend == "numba" and flavor != "onnx" and bool(cache_dir)
    if cached:
        saved = load_saved_runtime(str(cache_dir), model_version, parallel_rows=parallel_rows)
        if saved is not None:
            return saved
    model = registry.load_model(model_version)
    classes = model_version.output_schema.classes
    if backend == "onnx":
        return _onnx_runtime(model, classes, onnx_threads)
    if flavor == "onnx":
        raise UnsupportedModel(
            model_version,
            backend=backend,
            reason="the registered artifact is ONNX",
            supported=("backend='onnx' or 'auto' for onnx flavor",),
        )
    if backend == "numba":
        options = {} if parallel_rows is None else {"parallel_rows": parallel_rows}
        runtime = compile_model(model, "numba", fallback=fallback, **options)
        from gateway.runtimes.numba.runtime import NumbaRuntime

        if cached and isinstance(runtime, NumbaRuntime):  # not the sklearn fallback
            save_runtime(str(cache_dir), model_version, runtime, max_bytes=cache_max_bytes)
        return runtime
    return compile_model(model, backend)


def _cache_path(cache_dir: str, model_version: ModelVersion) -> Path:
    from gateway.runtimes.numba.saved import code_fingerprint

    return Path(cache_dir) / f"{model_version.sha256}-{code_fingerprint()}.npz"


def load_saved_runtime(
    cache_dir: str, model_version: ModelVersion, *, parallel_rows: int | None = None
) -> NumbaRuntime | None:
    """The version's saved numba runtime, or None (not saved yet, or unreadable: logged)."""
    from gateway.runtimes.numba.saved import SavedRuntimeError, load_saved

    path = _cache_path(cache_dir, model_version)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("runtime cache: cannot read %s (%s); compiling the artifact", path, exc)
        return None
    try:
        runtime = load_saved(data, parallel_rows=parallel_rows)
    except SavedRuntimeError as exc:
        logger.warning("runtime cache: %s: %s; compiling the artifact again", path, exc)
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # its modification time is its last use (see _prune)
    return runtime


def save_runtime(
    cache_dir: str,
    model_version: ModelVersion,
    runtime: NumbaRuntime,
    *,
    max_bytes: int = CACHE_MAX_BYTES,
) -> bool:
    """Save ``runtime`` for the next process (atomically), then delete the least recently
    used entries past ``max_bytes``; False when it could not be saved."""
    from gateway.runtimes.numba.saved import SavedRuntimeError, dump_saved

    path = _cache_path(cache_dir, model_version)
    try:
        data = dump_saved(runtime)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        for stale in path.parent.glob(f"{model_version.sha256}-*.npz"):
            if stale != path:  # written by another version of mlgate's kernels
                stale.unlink(missing_ok=True)
        _prune(path.parent, keep=path, max_bytes=max_bytes)
    except (OSError, SavedRuntimeError) as exc:
        logger.warning(
            "runtime cache: cannot save %s (%s); it is compiled on each start", path, exc
        )
        return False
    return True


def _prune(cache_dir: Path, *, keep: Path, max_bytes: int) -> None:
    """Delete saved runtimes, least recently used first, until the rest fit ``max_bytes``
    (``keep``, just saved, stays even when it alone is larger)."""
    entries = []
    for entry in cache_dir.glob("*.npz"):
        with contextlib.suppress(OSError):  # another process may delete it meanwhile
            stat = entry.stat()
            entries.append((stat.st_mtime, stat.st_size, entry))
    total = sum(size for _, size, _ in entries)
    for _, size, entry in sorted(entries, key=lambda e: e[0]):
        if total <= max_bytes:
            break
        if entry != keep:
            entry.unlink(missing_ok=True)
            total -= size
            logger.info("runtime cache: removed %s (least recently used)", entry.name)


def _onnx_runtime(model: Any, classes: Any, threads: int) -> Runtime:
    """ONNX bytes as stored, or an ``sklearn`` flavor's estimator (``compile_model`` exports
    it with the same skl2onnx export that registration uses)."""
    options: dict[str, Any] = {"threads": threads}
    if classes:
        options["classes"] = np.asarray(classes)
    return compile_model(model, "onnx", fallback=False, **options)
