"""Tree ensembles that read the float32 input rows themselves (no preprocessing program).

The kernel of a bare RandomForest, ExtraTrees, GradientBoosting or HistGradientBoosting
without categorical splits (the common case). Unlike ``forest_rows`` it takes few arguments
and writes into outputs the caller allocates: at one row, numba's dispatch (about 50 ns an
argument) and boxing returned arrays cost more than walking a small forest.

Layout: forest.py's node table, read as flat int32 / float32 arrays with unsigned indexes
(no negative-index code in the walk). Thresholds are float32 (rounded down from
scikit-learn's float64, which gives the same decisions for float32 inputs) and compared with
the row's float32 values directly.

``trees[t] = (root, column, depth)``, padded to a multiple of ``TREES_AT_ONCE`` with a dummy
leaf; ``spec = (reject, mode, link, n_classes, n_trees, max_depth, rows_at_once)``.

Two walks, chosen per block of rows. A block of fewer than ``LOCKSTEP_MIN_ROWS`` rows (a
one-row request) walks eight trees at once for each row: the trees' loads overlap. A larger
block walks one tree at a time for ``LOCKSTEP_ROWS`` rows at once, each tree exactly its own
depth (rows that reached a leaf stay on it): the rows' loads overlap, the tree's nodes are
read once for the whole group, and no work goes to padding trees. Measured against the
per-row walk on 13 forest shapes (64 and 4,096 rows): 1.3-4.6x faster, the most for shallow
boosted trees and forests of few trees; below ~8 rows the per-row walk is faster.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import prange

from gateway.runtimes.numba.finish import finish_rows
from gateway.runtimes.numba.forest import (
    MISSING_RIGHT,
    PARALLEL_CHUNK_ROWS,
    Forest,
    first_failure,
)
from gateway.runtimes.numba.program import ERR_INF, ERR_NAN, REJECT_INF, REJECT_NAN
from kernels import kernel

ROWS_AT_ONCE = 32
LOCKSTEP_ROWS = 32  # rows walking one tree together
LOCKSTEP_MIN_ROWS = 8  # smaller blocks of rows walk trees row by row
# Forests whose nodes outgrow the core's L2 (1 MiB here) walk 512-row blocks: each block of
# trees is then read from memory once per 512 rows, not per 32 (interleaved A/B at 4096 rows
# on this machine: 2-3x faster for 10-20 MB forests, unchanged or 5-15% slower for small ones).
# Unless the block's rows would crowd the trees out of L2 themselves: wide rows (500 features,
# 2 KB a row) walk fewer at once, so that a block stays within BIG_FOREST_BLOCK_BYTES (4,096
# rows x 500 features: 512-row blocks 1.1-1.9x slower than 32-128-row ones).
BIG_FOREST_BYTES = 1 << 19
BIG_FOREST_ROWS_AT_ONCE = 512
BIG_FOREST_BLOCK_BYTES = 1 << 18
PLAIN, HAS_NAN = -1, -2


@kernel(fastmath={"reassoc"})
def _row_finite(x: np.ndarray) -> bool:
    # x * 0 is NaN exactly for NaN and infinity; reassociation only lets the sum vectorize
    acc = np.float32(0.0)
    for j in range(x.shape[0]):
        acc += x[j] * np.float32(0.0)
    return bool(acc == acc)


@kernel()
def check_row(x: np.ndarray, row: int, reject: int) -> int:
    """``PLAIN`` (every value finite), ``HAS_NAN`` (a NaN the model routes), or the error
    status ``8 * (d * row + column) + kind`` of the first value the model refuses."""
    if _row_finite(x):
        return PLAIN
    d = x.shape[0]
    status = PLAIN
    for j in range(d):
        v = x[j]
        if v != v:
            if reject & REJECT_NAN:
                return int(8 * (d * row + j) + ERR_NAN)
            status = HAS_NAN
        elif (reject & REJECT_INF) and (v == np.inf or v == -np.inf):
            return int(8 * (d * row + j) + ERR_INF)
    return status


@kernel()
def walk(x: np.ndarray, nodes: np.ndarray, thr: np.ndarray, idx: np.ndarray, depth: int) -> None:
    """Advance the trees of ``idx`` to their leaves for row ``x`` (no NaN in it).

    ``nodes`` and ``thr`` are the flat int32 / float32 views of the node table. Indexes are
    unsigned (no negative-index wraparound code) and both children are computed before the
    select, so LLVM emits a conditional move, not a branch on the data."""
    K = 8
    one = np.uint64(1)
    for _ in range(depth):
        moved = np.uint64(0)
        for j in range(K):
            nd = idx[j]
            at = nd << np.uint64(2)
            go = np.uint64(x[nodes[at] & 0xFFFFFF] > thr[at + np.uint64(2)])
            nxt = np.uint64(nodes[at + one]) + go
            moved |= nxt ^ nd
            idx[j] = nxt
        if moved == 0:  # every tree of the block sits on a leaf
            return


@kernel()
def walk_nan(
    x: np.ndarray, nodes: np.ndarray, thr: np.ndarray, idx: np.ndarray, depth: int
) -> None:
    """Same walk for a row holding NaN: each split sends it where scikit-learn does."""
    K = 8
    one = np.uint64(1)
    for _ in range(depth):
        moved = np.uint64(0)
        for j in range(K):
            nd = idx[j]
            at = nd << np.uint64(2)
            head = nodes[at]
            v = x[head & 0xFFFFFF]
            nan_right = (v != v) & (((head >> 24) & MISSING_RIGHT) != 0)
            go = np.uint64((v > thr[at + np.uint64(2)]) | nan_right)
            nxt = np.uint64(nodes[at + one]) + go
            moved |= nxt ^ nd
            idx[j] = nxt
        if moved == 0:
            return


@kernel()
def _add_leaves(
    acc: np.ndarray,
    nodes: np.ndarray,
    values: np.ndarray,
    trees: np.ndarray,
    idx: np.ndarray,
    t0: int,
    n_trees: int,
) -> None:
    """Add the leaf values the trees ``t0:t0 + 8`` reached (``idx``) to the raw scores."""
    width = values.shape[1]
    for j in range(idx.shape[0]):
        if t0 + j < n_trees:
            leaf = nodes[(idx[j] << np.uint64(2)) + np.uint64(3)]
            col = trees[t0 + j, 1]
            for w in range(width):
                acc[col + w] += values[leaf, w]


@kernel()
def _lockstep_walk(
    X: np.ndarray,
    r0: int,
    n: int,
    nodes: np.ndarray,
    thr: np.ndarray,
    idx: np.ndarray,
    depth: int,
    nan: bool,
) -> None:
    """Advance rows ``r0:r0 + n`` of ``X`` from the nodes ``idx[:n]`` down one tree of
    ``depth`` levels; ``nan``: some of the rows hold a NaN, routed as scikit-learn does."""
    one, two = np.uint64(1), np.uint64(2)
    for _ in range(depth):
        if nan:
            for r in range(n):
                at = idx[r] << two
                head = nodes[at]
                v = X[np.uint64(r0 + r)][np.uint64(head & 0xFFFFFF)]
                nan_right = (v != v) & (((head >> 24) & MISSING_RIGHT) != 0)
                go = np.uint64((v > thr[at + two]) | nan_right)
                idx[r] = np.uint64(nodes[at + one]) + go
        else:
            for r in range(n):
                at = idx[r] << two
                x = X[np.uint64(r0 + r)]
                go = np.uint64(x[np.uint64(nodes[at] & 0xFFFFFF)] > thr[at + two])
                idx[r] = np.uint64(nodes[at + one]) + go


@kernel()
def _lockstep_block(
    X: np.ndarray,
    rb: int,
    re: int,
    nodes: np.ndarray,
    thr: np.ndarray,
    values: np.ndarray,
    trees: np.ndarray,
    n_trees: int,
    kind: np.ndarray,
    raw: np.ndarray,
    idx: np.ndarray,
) -> None:
    """Add every tree's leaf values for rows ``rb:re`` to ``raw`` (row ``rb`` at ``raw[0]``),
    tree by tree in order (scikit-learn's order of the sums), ``LOCKSTEP_ROWS`` rows at once."""
    L = LOCKSTEP_ROWS
    width = values.shape[1]
    two, three = np.uint64(2), np.uint64(3)
    n_groups = (re - rb + L - 1) // L
    group_nan = np.zeros(n_groups, dtype=np.bool_)
    for r in range(re - rb):
        if kind[r] != PLAIN:
            group_nan[r // L] = True
    for t in range(n_trees):
        root = np.uint64(trees[t, 0])
        col = trees[t, 1]
        depth = trees[t, 2]
        for g in range(n_groups):
            r0 = rb + g * L
            n = min(L, re - r0)
            for r in range(n):
                idx[r] = root
            _lockstep_walk(X, r0, n, nodes, thr, idx, depth, group_nan[g])
            at = r0 - rb
            if width == 1:
                for r in range(n):
                    raw[at + r, col] += values[nodes[(idx[r] << two) + three], 0]
            else:
                for r in range(n):
                    leaf = nodes[(idx[r] << two) + three]
                    for w in range(width):
                        raw[at + r, col + w] += values[leaf, w]


@kernel()
def _rows_block(
    X: np.ndarray,
    rb: int,
    re: int,
    nodes: np.ndarray,
    thr: np.ndarray,
    values: np.ndarray,
    trees: np.ndarray,
    n_trees: int,
    depth: int,
    kind: np.ndarray,
    raw: np.ndarray,
    idx: np.ndarray,
) -> None:
    """``_lockstep_block`` for a few rows: each row walks eight trees at once (``idx``: 8)."""
    K = 8
    for t0 in range(0, trees.shape[0], K):
        for row in range(rb, re):
            x = X[row]
            for j in range(K):
                idx[j] = np.uint64(trees[t0 + j, 0])
            if kind[row - rb] == PLAIN:
                walk(x, nodes, thr, idx, depth)
            else:
                walk_nan(x, nodes, thr, idx, depth)
            _add_leaves(raw[row - rb], nodes, values, trees, idx, t0, n_trees)


@kernel()
def forest_direct_rows(
    X: np.ndarray,
    r0: int,
    r1: int,
    nodes: np.ndarray,
    values: np.ndarray,
    trees: np.ndarray,
    init: np.ndarray,
    spec: np.ndarray,
    divisor: float,
    out: np.ndarray,
    labels: np.ndarray,
) -> int:
    """Rows ``r0:r1`` of ``X`` -> ``out`` and ``labels``; -1, or the first error status.

    Rows go in blocks of ``spec[6]`` rows: each tree (or block of trees) walks every row of the
    block before the next, so the upper levels of the trees stay in cache."""
    R = spec[6]
    reject, mode, link, n_classes, n_trees, depth = (
        spec[0],
        spec[1],
        spec[2],
        spec[3],
        spec[4],
        spec[5],
    )
    thr = nodes.view(np.float32)
    k = init.shape[0]
    raw = np.empty((R, k))
    kind = np.empty(R, dtype=np.int64)
    idx = np.empty(8, dtype=np.uint64)
    idx_rows = np.empty(LOCKSTEP_ROWS, dtype=np.uint64)
    for rb in range(r0, r1, R):
        re = min(r1, rb + R)
        for row in range(rb, re):
            status = check_row(X[row], row, reject)
            if status >= 0:
                return status
            kind[row - rb] = status
            for c in range(k):
                raw[row - rb, c] = init[c]
        if re - rb >= LOCKSTEP_MIN_ROWS:
            _lockstep_block(X, rb, re, nodes, thr, values, trees, n_trees, kind, raw, idx_rows)
        else:
            _rows_block(X, rb, re, nodes, thr, values, trees, n_trees, depth, kind, raw, idx)
        finish_rows(raw, re - rb, mode, divisor, link, n_classes, out, rb, labels)
    return -1


@kernel()
def forest_direct(
    X: np.ndarray,
    nodes: np.ndarray,
    values: np.ndarray,
    trees: np.ndarray,
    init: np.ndarray,
    spec: np.ndarray,
    divisor: float,
    out: np.ndarray,
    labels: np.ndarray,
) -> int:
    """Every row of ``X``, one thread; -1 or the first error status."""
    return forest_direct_rows(
        X, 0, X.shape[0], nodes, values, trees, init, spec, divisor, out, labels
    )


@kernel(parallel=True)
def forest_direct_parallel(
    X: np.ndarray,
    nodes: np.ndarray,
    values: np.ndarray,
    trees: np.ndarray,
    init: np.ndarray,
    spec: np.ndarray,
    divisor: float,
    out: np.ndarray,
    labels: np.ndarray,
) -> int:
    """Same as ``forest_direct``, rows split in chunks over numba's thread pool."""
    n = X.shape[0]
    chunk = PARALLEL_CHUNK_ROWS
    n_chunks = (n + chunk - 1) // chunk
    statuses = np.full(n_chunks, -1, dtype=np.int64)
    for c in prange(n_chunks):
        statuses[c] = forest_direct_rows(
            X,
            c * chunk,
            min(n, (c + 1) * chunk),
            nodes,
            values,
            trees,
            init,
            spec,
            divisor,
            out,
            labels,
        )
    return first_failure(statuses)


@dataclass(frozen=True)
class DirectForest:
    """A ``Forest`` in ``forest_direct``'s arguments (one per model, built at load)."""

    nodes: np.ndarray  # int32 [4 * nodes], the rows of Forest.nodes one after the other
    values: np.ndarray
    trees: np.ndarray  # int32 [slots, 3]: root, first raw column, depth
    init: np.ndarray
    mode: int
    divisor: float
    link: int
    n_classes: int
    n_trees: int
    depth: int

    def spec(self, reject: int, n_features: int) -> np.ndarray:
        """``spec`` for a model that refuses ``reject`` (program.REJECT_* flags) in its input
        of ``n_features`` float32 columns."""
        fields = (
            reject,
            self.mode,
            self.link,
            self.n_classes,
            self.n_trees,
            self.depth,
            self.rows_at_once(n_features),
        )
        return np.array(fields, dtype=np.int64)

    def rows_at_once(self, n_features: int) -> int:
        """Rows per block (see ``BIG_FOREST_BYTES``)."""
        if self.nodes.nbytes <= BIG_FOREST_BYTES:
            return ROWS_AT_ONCE
        fit = BIG_FOREST_BLOCK_BYTES // (4 * max(1, n_features)) // ROWS_AT_ONCE * ROWS_AT_ONCE
        return max(ROWS_AT_ONCE, min(BIG_FOREST_ROWS_AT_ONCE, fit))


def direct_forest(
    forest: Forest, *, mode: int, divisor: float, link: int, n_classes: int
) -> DirectForest | None:
    """``forest`` for ``forest_direct``, or None when it needs the general kernel (categorical
    splits, float64 thresholds)."""
    if forest.left_bits.shape[0] or forest.threshold.dtype != np.float32:
        return None
    n_trees = forest.n_trees
    cols = np.zeros(forest.roots.shape[0], dtype=np.int32)
    cols[:n_trees] = forest.tree_col
    depths = np.zeros(forest.roots.shape[0], dtype=np.int32)
    depths[:n_trees] = forest.tree_depth
    return DirectForest(
        nodes=forest.nodes.reshape(-1),
        values=forest.values,
        trees=np.ascontiguousarray(np.stack([forest.roots, cols, depths], axis=1), dtype=np.int32),
        init=forest.init,
        mode=mode,
        divisor=divisor,
        link=link,
        n_classes=n_classes,
        n_trees=n_trees,
        depth=int(forest.block_depth.max(initial=0)),
    )
