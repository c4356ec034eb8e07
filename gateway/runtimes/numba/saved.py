"""A compiled ``NumbaRuntime`` saved as plain arrays, and loaded back without scikit-learn.

Compiling a model reads the fitted estimator, so serving a registered version from its
artifact imports scikit-learn and skops and runs skops' audited loader: ~1.7 s of a worker's
start on the reference forest, against ~0.05 s for the arrays the kernels actually read. The
runtime's parts (the element-wise program, the kernel's arrays and scalars, the one-hot stage)
are numpy arrays, numbers, strings and a few frozen dataclasses of ours, so they are saved as
one ``.npz`` file: the arrays as its members, the structure as a JSON member.

Loading trusts nothing but its own format: arrays are read with ``allow_pickle=False``, only
the dataclasses below are built, and kernels are named functions of our own kernel modules.
Object arrays (string class labels) are stored as JSON lists of strings and numbers. A file
that does not parse raises ``SavedRuntimeError``; the caller compiles from the artifact instead.

>>> import numpy as np
>>> from sklearn.linear_model import LogisticRegression
>>> from gateway.runtimes.numba.compile import compile_numba
>>> X = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]], dtype=np.float32)
>>> runtime = compile_numba(LogisticRegression().fit(X, ["no", "yes", "yes", "no"]))
>>> again = load_saved(dump_saved(runtime))
>>> again.predict(X)["predict"].tolist() == runtime.predict(X)["predict"].tolist()
True
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import os
import tempfile
import zipfile
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

import kernels
from gateway.runtimes.numba import forest, linear, mlp
from gateway.runtimes.numba.forest_direct import DirectForest
from gateway.runtimes.numba.program import Program
from gateway.runtimes.numba.runtime import Kernel, NumbaRuntime, OneHotStage, make_runtime
from gateway.runtimes.numba.steps import OneHot

log = logging.getLogger(__name__)
FORMAT = 1
SPEC = "__spec__"
_DATACLASSES: dict[str, type] = {
    cls.__name__: cls for cls in (Program, Kernel, OneHotStage, OneHot, DirectForest)
}
_KERNEL_MODULES = {m.__name__: m for m in (forest, linear, mlp)}


class SavedRuntimeError(ValueError):
    """Bytes that are not a saved runtime of this format (or a runtime that cannot be saved)."""


@cache
def code_fingerprint() -> str:
    """A digest of the sources that decide a saved runtime's layout (this package and the
    kernel decorator) and of numpy's and scikit-learn's versions (read from their metadata,
    without importing scikit-learn): a saved runtime is only reused by the code that wrote
    it, and an upgraded scikit-learn compiles its artifacts again."""
    try:
        sklearn_version = metadata.version("scikit-learn")
    except metadata.PackageNotFoundError:
        sklearn_version = "-"
    digest = hashlib.sha256(f"{FORMAT}:{np.__version__}:{sklearn_version}".encode())
    sources = sorted(Path(__file__).resolve().parent.glob("*.py"))
    for path in [*sources, Path(kernels.__file__)]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class SavedRuntimes:
    """A directory of saved runtimes, one ``<key>-<code_fingerprint()>.npz`` per artifact
    (``key``: the artifact's sha256), kept under ``max_bytes`` by deleting the least recently
    used. A disposable, local copy of what artifacts compile to, like numba's own cache: an
    entry that cannot be read is logged and reported missing (the caller compiles again and
    saves over it), and a directory that cannot be written only costs the speed-up."""

    def __init__(self, directory: str, *, max_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes

    def path(self, key: str) -> Path:
        return self.directory / f"{key}-{code_fingerprint()}.npz"

    def load(self, key: str, *, parallel_rows: int | None = None) -> NumbaRuntime | None:
        """The runtime saved under ``key``, or None (not saved yet, or unreadable: logged)."""
        path = self.path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("runtime cache: cannot read %s (%s); compiling the artifact", path, exc)
            return None
        try:
            runtime = load_saved(data, parallel_rows=parallel_rows)
        except SavedRuntimeError as exc:
            log.warning("runtime cache: %s: %s; compiling the artifact again", path, exc)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # its modification time is its last use (see _prune)
        return runtime

    def save(self, key: str, runtime: NumbaRuntime) -> bool:
        """Save ``runtime`` under ``key`` (atomically), drop what older code saved under it and
        the least recently used entries past ``max_bytes``; False when it could not be saved."""
        path = self.path(key)
        try:
            data = dump_saved(runtime)
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=path.name, suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            for stale in self.directory.glob(f"{key}-*.npz"):
                if stale != path:  # written by another version of mlgate's kernels
                    stale.unlink(missing_ok=True)
            self._prune(keep=path)
        except (OSError, SavedRuntimeError) as exc:
            log.warning("runtime cache: cannot save %s (%s); compiled on each start", path, exc)
            return False
        return True

    def _prune(self, *, keep: Path) -> None:
        """Delete entries, least recently used first, until the rest fit ``max_bytes``
        (``keep``, just saved, stays even when it alone is larger)."""
        entries = []
        for entry in self.directory.glob("*.npz"):
            with contextlib.suppress(OSError):  # another process may delete it meanwhile
                stat = entry.stat()
                entries.append((stat.st_mtime, stat.st_size, entry))
        total = sum(size for _, size, _ in entries)
        for _, size, entry in sorted(entries, key=lambda e: e[0]):
            if total <= self.max_bytes:
                break
            if entry != keep:
                entry.unlink(missing_ok=True)
                total -= size
                log.info("runtime cache: removed %s (least recently used)", entry.name)


def dump_saved(runtime: NumbaRuntime) -> bytes:
    """``runtime`` as the bytes of one ``.npz`` file (raises ``SavedRuntimeError`` for a
    runtime holding something this format does not store)."""
    arrays: dict[str, np.ndarray] = {}
    parts = {
        "n_features": runtime.n_features,
        "task": runtime.task,
        "classes": runtime.classes,
        "allows_nan": runtime.allows_nan,
        "model_name": runtime.model_name,
        "program": runtime.program,
        "kernel": runtime.kernel,
        "onehot": runtime.onehot,
    }
    spec = {"format": FORMAT, "runtime": {k: _encode(v, arrays) for k, v in parts.items()}}
    buffer = io.BytesIO()
    arrays[SPEC] = np.frombuffer(json.dumps(spec).encode(), dtype=np.uint8)
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def load_saved(data: bytes, *, parallel_rows: int | None = None) -> NumbaRuntime:
    """The runtime saved in ``data``; ``parallel_rows`` replaces the saved one when given."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        spec = json.loads(arrays.pop(SPEC).tobytes())
        if spec.get("format") != FORMAT:
            raise SavedRuntimeError(f"saved runtime format {spec.get('format')!r}, not {FORMAT}")
        parts = {k: _decode(v, arrays) for k, v in spec["runtime"].items()}
        kernel = parts["kernel"]
        if not isinstance(kernel, Kernel) or not isinstance(parts["program"], Program):
            raise SavedRuntimeError("not a saved runtime: no kernel or program")
        if parallel_rows is not None:
            parts["kernel"] = dataclasses.replace(kernel, parallel_rows=parallel_rows)
        return make_runtime(**parts)
    except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            RecursionError, zipfile.BadZipFile) as exc:  # fmt: skip
        if isinstance(exc, SavedRuntimeError):
            raise
        raise SavedRuntimeError(f"not a saved runtime: {exc}") from exc


def _encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """JSON for ``value``; arrays go to ``arrays`` under a generated name."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | np.integer):
        return {"i": int(value)}
    if isinstance(value, float | np.floating):
        return {"f": repr(float(value))}  # NaN and infinities survive
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            items = value.tolist()
            if value.ndim != 1 or not all(isinstance(v, str | int | float) for v in items):
                raise SavedRuntimeError("an object array of other than strings and numbers")
            return {"objects": items}
        name = f"a{len(arrays)}"
        arrays[name] = value
        return {"array": name}
    if isinstance(value, tuple):
        return {"tuple": [_encode(v, arrays) for v in value]}
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return {"dtype": np.dtype(value).str}
    if dataclasses.is_dataclass(value) and type(value).__name__ in _DATACLASSES:
        fields = {
            f.name: _encode(getattr(value, f.name), arrays) for f in dataclasses.fields(value)
        }
        return {"dataclass": type(value).__name__, "fields": fields}
    module = _KERNEL_MODULES.get(getattr(value, "__module__", ""))
    name = getattr(value, "__name__", "")
    if module is not None and getattr(module, name, None) is value:
        return {"kernel": f"{module.__name__}:{name}"}
    raise SavedRuntimeError(f"cannot save a {type(value).__name__}")


def _decode(value: Any, arrays: dict[str, np.ndarray]) -> Any:  # noqa: C901 - one case a tag
    if value is None or isinstance(value, bool | str):
        return value
    if not isinstance(value, dict) or len(value) not in (1, 2):
        raise SavedRuntimeError(f"not a saved runtime: unexpected {value!r:.60}")
    if "i" in value:
        return int(value["i"])
    if "f" in value:
        return float(value["f"])
    if "objects" in value:
        return np.array(list(value["objects"]), dtype=object)
    if "array" in value:
        return arrays[value["array"]]
    if "tuple" in value:
        return tuple(_decode(v, arrays) for v in value["tuple"])
    if "dtype" in value:
        return np.dtype(value["dtype"])
    if "dataclass" in value:
        cls = _DATACLASSES[value["dataclass"]]
        return cls(**{k: _decode(v, arrays) for k, v in value["fields"].items()})
    if "kernel" in value:
        module_name, _, name = str(value["kernel"]).partition(":")
        fn = getattr(_KERNEL_MODULES[module_name], name, None)
        if fn is None or getattr(fn, "__module__", None) != module_name:
            raise SavedRuntimeError(f"not a saved runtime: unknown kernel {value['kernel']!r}")
        return fn
    raise SavedRuntimeError(f"not a saved runtime: unexpected {value!r:.60}")
