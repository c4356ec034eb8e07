"""The ``Runtime`` protocol every inference backend implements."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np


@runtime_checkable
class Runtime(Protocol):
    """A compiled model: float32 rows in, named output arrays out.

    ``predict`` is thread-safe and releases the GIL for the bulk of its work, so several
    batcher threads may call it at once.
    """

    backend: str  # "numba" | "onnx" | "sklearn"
    n_features: int
    task: str  # "classification" | "regression"
    classes: np.ndarray | None  # class labels for classifiers, else None
    allows_nan: bool  # whether NaN inputs are meaningful to this model

    def predict(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """``X``: float32 ``[n, n_features]``. Returns ``{"predict": (n,)}`` and, for
        classifiers, ``{"predict_proba": (n, k)}`` (float64)."""
        ...
