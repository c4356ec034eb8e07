"""Input coercion shared by every backend.

Rules (the same for ``numba``, ``onnx`` and ``sklearn``):

- ``X`` must be 2-D ``[n, n_features]``; a 1-D array is refused (ambiguous: one row or one
  column?), as is a wrong column count. The error names expected and received shapes.
- float32 is used as is. Other real or integer dtypes (float64, float16, int*, uint*, bool) are
  converted to float32 with numpy's rounding; a finite float64 value outside float32's range
  would become infinite and is refused. Complex, object and string arrays are refused.
- An empty batch (``n == 0``) is valid and yields empty outputs of the right shapes.
- Non-contiguous and read-only arrays are copied (C order, writeable).
- NaN and infinity are checked by each backend against what the model accepts (see
  ``Runtime.allows_nan``); scikit-learn refuses infinity everywhere except in
  HistGradientBoosting, and the runtimes follow it.
"""

from __future__ import annotations

import numpy as np


def as_float32_rows(X: object, n_features: int) -> np.ndarray:
    """Return ``X`` as a C-contiguous float32 ``[n, n_features]`` array or raise ``ValueError``.

    >>> as_float32_rows(np.array([[1, 2]], dtype=np.int64), 2).dtype
    dtype('float32')
    """
    if type(X) is np.ndarray and X.dtype == np.float32 and X.ndim == 2:
        arr = X
    else:
        arr = np.asarray(X)
        if arr.dtype.kind not in "fiub":
            raise ValueError(
                f"input X: expected float32 rows [n, {n_features}], got dtype {arr.dtype} "
                f"shape {list(arr.shape)}"
            )
        if arr.ndim != 2:
            raise ValueError(
                f"input X: expected a 2-D array [n, {n_features}], got {arr.ndim}-D "
                f"shape {list(arr.shape)}"
            )
        if arr.dtype != np.float32:
            arr = _to_float32(arr)
    if arr.shape[1] != n_features:
        raise ValueError(
            f"input X: expected shape [n, {n_features}], got {list(arr.shape)} "
            f"({arr.shape[1]} columns instead of {n_features})"
        )
    if not arr.flags.c_contiguous or not arr.flags.writeable:
        # read-only buffers (np.frombuffer of a request body) would make numba compile a
        # second, read-only variant of every kernel on the serving path: copy instead
        arr = np.array(arr, order="C")
    return arr


def _to_float32(arr: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        out = arr.astype(np.float32)
    if arr.dtype.kind == "f" and arr.size:
        overflow = np.isinf(out) & np.isfinite(arr)
        if overflow.any():
            row, col = np.argwhere(overflow)[0]
            raise ValueError(
                f"input X: value {arr[row, col]!r} at row {row}, column {col} is outside the "
                f"float32 range (max {np.finfo(np.float32).max:.3e})"
            )
    return out
