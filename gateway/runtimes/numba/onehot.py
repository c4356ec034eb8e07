"""One-hot expansion: the one pipeline step that changes the column count is materialized."""

from __future__ import annotations

import numpy as np

from gateway.runtimes.numba.program import ERR_UNKNOWN_CATEGORY, apply_program
from kernels import kernel


@kernel()
def onehot_expand(
    X: np.ndarray,
    code: np.ndarray,
    params: np.ndarray,
    round32: np.ndarray,
    reject: np.ndarray,
    cats: np.ndarray,
    start: np.ndarray,
    count: np.ndarray,
    out_col: np.ndarray,
    onehot_cats: np.ndarray,
    ignore_unknown: bool,
    n_out: int,
) -> tuple[np.ndarray, int]:
    n, d = X.shape
    out = np.zeros((n, n_out))
    buf = np.empty(d)
    for row in range(n):
        status = apply_program(X, row, code, params, round32, reject, cats, buf)
        if status >= 0:
            return out, status + 8 * d * row
        for j in range(d):
            x = buf[j]
            found = -1
            for i in range(count[j]):
                c = onehot_cats[start[j] + i]
                if c == x or (c != c and x != x):
                    found = i
                    break
            if found >= 0:
                out[row, out_col[j] + found] = 1.0
            elif not ignore_unknown:
                return out, 8 * j + ERR_UNKNOWN_CATEGORY + 8 * d * row
    return out, -1
