"""Linear models: ``raw = x @ coef.T + intercept`` per row, fused with the preprocessing program."""

from __future__ import annotations

import numpy as np

from gateway.runtimes.numba.finish import NO_LINK, finish
from gateway.runtimes.numba.program import (
    ERR_INF,
    ERR_NAN,
    REJECT_INF,
    REJECT_NAN,
    affine_rows,
    apply_program,
)
from kernels import kernel


@kernel()
def linear_predict(
    X: np.ndarray,
    code: np.ndarray,
    params: np.ndarray,
    round32: np.ndarray,
    reject: np.ndarray,
    cats: np.ndarray,
    affine_ops: np.ndarray,
    affine_values: np.ndarray,
    coef: np.ndarray,
    intercept: np.ndarray,
    mode: int,
    n_classes: int,
    work: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, int]:
    """``coef [k, d]`` float64, ``intercept [k]`` -> ``(values, label_index, status)``.

    ``work``: float64 scratch ``[n, d]`` (reused across calls: no page faults)."""
    n, d = X.shape
    k = coef.shape[0]
    raw = np.empty((n, k))
    if code.shape[0] == 0:
        return _plain(X, reject[0], coef, intercept, raw, mode, n_classes)
    if affine_ops.shape[0] > 0:
        transformed = work
        if affine_rows(X, affine_ops, affine_values, round32, transformed):
            _scores(transformed, coef, intercept, raw)
            out, labels = finish(raw, mode, 1.0, NO_LINK, n_classes)
            return out, labels, -1
    # general program, or a non-finite value somewhere: exact per-value checks
    buf = np.empty(d)
    for row in range(n):
        status = apply_program(X, row, code, params, round32, reject, cats, buf)
        if status >= 0:
            out, labels = finish(raw[:0], mode, 1.0, NO_LINK, n_classes)
            return out, labels, status + 8 * d * row
        for c in range(k):
            acc = 0.0
            for j in range(d):
                acc += buf[j] * coef[c, j]
            raw[row, c] = acc + intercept[c]
    out, labels = finish(raw, mode, 1.0, NO_LINK, n_classes)
    return out, labels, -1


@kernel(fastmath={"reassoc"})
def _scores(X: np.ndarray, coef: np.ndarray, intercept: np.ndarray, raw: np.ndarray) -> None:
    # reassociation lets LLVM vectorize the dot product; the order of a float64 sum of
    # float32 products moves results by ~1e-16 relative, as BLAS's own blocking does
    n, d = X.shape
    for row in range(n):
        for c in range(coef.shape[0]):
            acc = 0.0
            for j in range(d):
                acc += np.float64(X[row, j]) * coef[c, j]
            raw[row, c] = acc + intercept[c]


@kernel()
def _plain(
    X: np.ndarray,
    reject: int,
    coef: np.ndarray,
    intercept: np.ndarray,
    raw: np.ndarray,
    mode: int,
    n_classes: int,
) -> tuple[np.ndarray, np.ndarray, int]:
    """No preprocessing: products first, input checks only for rows whose score is not
    finite (a NaN or an infinity in a row always makes every score of the row non-finite)."""
    n, d = X.shape
    _scores(X, coef, intercept, raw)
    if reject:
        for row in range(n):
            if np.isfinite(raw[row, 0]):
                continue
            for j in range(d):
                x = X[row, j]
                kind = 0
                if x != x and reject & REJECT_NAN:
                    kind = ERR_NAN
                elif (x == np.inf or x == -np.inf) and reject & REJECT_INF:
                    kind = ERR_INF
                if kind:
                    out, labels = finish(raw[:0], mode, 1.0, NO_LINK, n_classes)
                    return out, labels, kind + 8 * j + 8 * d * row
    out, labels = finish(raw, mode, 1.0, NO_LINK, n_classes)
    return out, labels, -1
