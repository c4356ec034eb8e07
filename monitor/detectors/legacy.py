"""Detector state that monitors before array states kept as pickles, read once to migrate.

Those pickles name the classes where they lived then (``monitor.detectors``,
``monitor.adwin``, ``monitor.ddm``). They are read with an unpickler that resolves exactly
those names, to today's classes with the same attributes, plus numpy's array reconstruction,
and refuses anything else; the result is stored as arrays and the pickle dropped.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from monitor.detectors.adwin import ADWIN
from monitor.detectors.ddm import DDM
from monitor.detectors.streams import ConfidenceMonitor, ErrorMonitor

_CLASSES: dict[tuple[str, str], Any] = {
    ("monitor.detectors", "ConfidenceMonitor"): ConfidenceMonitor,
    ("monitor.detectors", "ErrorMonitor"): ErrorMonitor,
    ("monitor.adwin", "ADWIN"): ADWIN,
    ("monitor.ddm", "DDM"): DDM,
}


# numpy's own pickling names (resolved by pickle as usual, numpy 1 and 2 spellings)
_NUMPY = (
    {
        (module, name)
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "scalar")
    }
    | {(module, "_frombuffer") for module in ("numpy.core.numeric", "numpy._core.numeric")}
    | {("numpy", "ndarray"), ("numpy", "dtype")}
)


class LegacyStateError(ValueError):
    """A stored pickle that is not an older monitor's detector."""


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY:
            return super().find_class(module, name)
        found = _CLASSES.get((module, name))
        if found is None:
            raise LegacyStateError(f"not a detector state: it names {module}.{name}")
        return found


def from_pickle(blob: bytes) -> ConfidenceMonitor | ErrorMonitor:
    """The detector an older monitor pickled (raises :class:`LegacyStateError`)."""
    try:
        found = _Unpickler(io.BytesIO(blob)).load()
    except LegacyStateError:
        raise
    except Exception as exc:  # noqa: BLE001 - any other damage: the caller starts afresh
        raise LegacyStateError(f"unreadable detector pickle: {type(exc).__name__}: {exc}") from exc
    if not isinstance(found, ConfidenceMonitor | ErrorMonitor):
        raise LegacyStateError(f"not a detector state: a {type(found).__name__}")
    return found
