"""Tree ensembles as flat arrays and a branch-free walk that advances several trees at once.

Every tree is laid out in sibling-pair depth-first order: the two children of a node are
adjacent, ``child`` and ``child + 1``, so the next node is ``child + go_right`` with
``go_right`` computed without a branch (a select between two unrelated children compiled to a
branch on the data here); and a node's pair sits right after the pair holding the node when
the walk goes left, so a path down a deep tree stays in fewer cache lines than a breadth-first
layout's. Leaves point to themselves with an infinite threshold, so a fixed number of steps
(the depth of the deepest tree of the block) walks ``TREES_AT_ONCE`` independent trees in
lock-step: their loads overlap instead of waiting on each other, and no branch depends on the
data (the measured reason: a branching walk fell 1.4-4.5x behind at 4096 rows).

A node is 16 bytes, ``nodes[i] = (feature | flags << 24, child, threshold, aux)``: flags
bit 1 = NaN goes right, bit 2 = categorical split (HistGradientBoosting); ``aux`` is the
leaf's row in ``values`` for leaves, the bitset row in ``left_bits`` for categorical
splits. The threshold is stored in the node as float32, rounded down: for a float32 ``x``,
``x <= t64`` exactly when ``x <= round_down32(t64)``, so comparisons stay bit-identical to
scikit-learn's float64 ones while a node fits a quarter of a cache line. When the values
reaching the trees may not be float32 (float64 preprocessing), ``threshold`` is a separate
float64 array instead. Per tree, ``tree_col[t]`` is the first raw column
its leaf values add to; values add in tree order, as scikit-learn sums them, so the raw scores
are bit-identical. ``forest_direct.py`` walks the same layout straight from the float32 rows
when there is no preprocessing to apply.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import prange

from gateway.runtimes.numba.finish import finish
from gateway.runtimes.numba.program import apply_program
from kernels import kernel

TREES_AT_ONCE = 8
ROWS_AT_ONCE = 32
MISSING_RIGHT = 1
CATEGORICAL = 2
PARALLEL_CHUNK_ROWS = 64  # rows a thread of numba's pool takes at a time (parallel kernels)


@kernel()
def first_failure(statuses: np.ndarray) -> int:
    """The first chunk's error status of a parallel kernel's chunks, in row order (-1: none)."""
    for c in range(statuses.shape[0]):
        if statuses[c] >= 0:
            return int(statuses[c])
    return -1


@dataclass(frozen=True)
class Forest:
    nodes: np.ndarray  # int32 [N, 4]
    threshold: np.ndarray  # float32 view of nodes[:, 2], or float64 [N]
    values: np.ndarray  # float64 [leaves, W]
    roots: np.ndarray  # int32 [ceil(T / K) * K], padded with a dummy leaf
    block_depth: np.ndarray  # int32 [ceil(T / K)]
    tree_depth: np.ndarray  # int32 [T]
    tree_col: np.ndarray  # int32 [T]
    left_bits: np.ndarray  # uint32 [B, 8] categories going left, per categorical split
    known_bits: np.ndarray  # uint32 [C, 8] known categories per categorical feature
    feature_bits: np.ndarray  # int32 [d] row in known_bits per feature
    init: np.ndarray  # float64 [n_raw] starting raw score

    @property
    def n_trees(self) -> int:
        return int(self.tree_col.shape[0])

    def args(self) -> tuple[np.ndarray, ...]:
        return (
            self.nodes,
            self.threshold,
            self.values,
            self.roots,
            self.block_depth,
            self.tree_col,
            self.left_bits,
            self.known_bits,
            self.feature_bits,
            self.init,
        )


@kernel()
def layout_tree(
    left: np.ndarray,
    right: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    flags: np.ndarray,
    aux: np.ndarray,
    is_leaf: np.ndarray,
    base: int,
    leaf_base: int,
    nodes_out: np.ndarray,
    threshold_out: np.ndarray,
    leaf_of: np.ndarray,
) -> int:
    """Write one tree at ``nodes_out[base:]`` in sibling-pair depth-first order; return its
    depth.

    The root comes first; the children of a node are a pair ``(child, child + 1)`` placed
    right after the pair holding the node when the walk reaches it (its left subtree before
    its right one). ``leaf_of[i]`` receives the new leaf row of source node ``i`` (or -1)."""
    n = left.shape[0]
    stack_src = np.empty(n + 1, dtype=np.int64)
    stack_dst = np.empty(n + 1, dtype=np.int64)
    stack_depth = np.empty(n + 1, dtype=np.int64)
    stack_src[0] = 0
    stack_dst[0] = base
    stack_depth[0] = 0
    top = 1
    free = base + 1
    depth = 0
    leaves = 0
    while top > 0:
        top -= 1
        src = stack_src[top]
        dst = stack_dst[top]
        level = stack_depth[top]
        if level > depth:
            depth = level
        if is_leaf[src]:
            nodes_out[dst, 0] = 0
            nodes_out[dst, 1] = dst  # a leaf points to itself: x > inf is never true
            nodes_out[dst, 3] = leaf_base + leaves
            threshold_out[dst] = np.inf
            leaf_of[src] = leaf_base + leaves
            leaves += 1
            continue
        nodes_out[dst, 0] = feature[src] | (flags[src] << 24)
        nodes_out[dst, 1] = free
        nodes_out[dst, 3] = aux[src]
        threshold_out[dst] = threshold[src]
        stack_src[top] = right[src]  # expanded after the whole left subtree
        stack_dst[top] = free + 1
        stack_depth[top] = level + 1
        stack_src[top + 1] = left[src]  # expanded next: its pair goes at free + 2
        stack_dst[top + 1] = free
        stack_depth[top + 1] = level + 1
        top += 2
        free += 2
    return depth


@kernel()
def _go_right_categorical(
    x: float,
    nd: int,
    flags: int,
    nodes: np.ndarray,
    left_bits: np.ndarray,
    known_bits: np.ndarray,
    feature_bits: np.ndarray,
) -> int:
    # scikit-learn's _predict_one_from_raw_data for categorical splits
    missing_right = flags & MISSING_RIGHT
    if x != x or x < 0:
        return missing_right
    c = np.int64(x) & 255  # scikit-learn casts to uint8; encoded categories are < 255
    word = c >> 5
    bit = np.uint32(1) << np.uint32(c & 31)
    if left_bits[nodes[nd, 3], word] & bit:
        return 0
    if known_bits[feature_bits[nodes[nd, 0] & 0xFFFFFF], word] & bit:
        return 1
    return missing_right


@kernel()
def _walk_plain(
    buf: np.ndarray, nodes: np.ndarray, threshold: np.ndarray, idx: np.ndarray, depth: int
) -> None:
    """Advance the trees of ``idx`` to their leaves: a row without NaN, numeric splits only."""
    K = 8
    for _ in range(depth):
        moved = 0
        for j in range(K):
            nd = idx[j]
            nxt = nodes[nd, 1] + np.int64(buf[nodes[nd, 0] & 0xFFFFFF] > threshold[nd])
            moved |= nxt ^ nd
            idx[j] = nxt
        if moved == 0:  # every tree of the block sits on a leaf
            return


@kernel()
def _walk_general(
    buf: np.ndarray,
    nodes: np.ndarray,
    threshold: np.ndarray,
    idx: np.ndarray,
    depth: int,
    left_bits: np.ndarray,
    known_bits: np.ndarray,
    feature_bits: np.ndarray,
) -> None:
    """Same walk with NaN routing and categorical splits."""
    K = 8
    for _ in range(depth):
        moved = 0
        for j in range(K):
            nd = idx[j]
            head = nodes[nd, 0]
            x = buf[head & 0xFFFFFF]
            fl = head >> 24
            go = np.int64(x > threshold[nd]) | (np.int64(x != x) & (fl & MISSING_RIGHT))
            if fl & CATEGORICAL:
                go = _go_right_categorical(x, nd, fl, nodes, left_bits, known_bits, feature_bits)
            nxt = nodes[nd, 1] + go
            moved |= nxt ^ nd
            idx[j] = nxt
        if moved == 0:
            return


@kernel()
def forest_rows(  # noqa: C901 (one loop nest: helpers would sit in the hot loop)
    X: np.ndarray,
    r0: int,
    r1: int,
    code: np.ndarray,
    params: np.ndarray,
    round32: np.ndarray,
    reject: np.ndarray,
    cats: np.ndarray,
    nodes: np.ndarray,
    threshold: np.ndarray,
    values: np.ndarray,
    roots: np.ndarray,
    block_depth: np.ndarray,
    tree_col: np.ndarray,
    left_bits: np.ndarray,
    known_bits: np.ndarray,
    feature_bits: np.ndarray,
    init: np.ndarray,
    raw: np.ndarray,
) -> int:
    """Raw scores of rows ``r0:r1`` into ``raw``; -1 or an error code (see runtime.py).

    Rows go in blocks of ``ROWS_AT_ONCE``: each block of trees walks every row of the block
    before the next block of trees, so the upper levels of those trees stay in cache.
    """
    K = 8
    R = 32
    width = values.shape[1]
    n_trees = tree_col.shape[0]
    d = X.shape[1]
    rows = np.empty((R, d))
    plain = np.empty(R, dtype=np.bool_)
    idx = np.empty(K, dtype=np.int64)
    has_categorical = left_bits.shape[0] > 0
    for rb in range(r0, r1, R):
        re = min(r1, rb + R)
        for row in range(rb, re):
            buf = rows[row - rb]
            status = apply_program(X, row, code, params, round32, reject, cats, buf)
            if status >= 0:
                return int(status + 8 * d * row)
            # rows without NaN take the short step when the model has no categorical split
            plain[row - rb] = not has_categorical
            for j in range(d):
                if buf[j] != buf[j]:
                    plain[row - rb] = False
            for c in range(init.shape[0]):
                raw[row, c] = init[c]
        for b in range(block_depth.shape[0]):
            t0 = b * K
            depth = block_depth[b]
            for row in range(rb, re):
                buf = rows[row - rb]
                for j in range(K):
                    idx[j] = roots[t0 + j]
                if plain[row - rb]:
                    _walk_plain(buf, nodes, threshold, idx, depth)
                else:
                    _walk_general(
                        buf, nodes, threshold, idx, depth, left_bits, known_bits, feature_bits
                    )
                out = raw[row]
                for j in range(K):
                    t = t0 + j
                    if t < n_trees:
                        leaf = nodes[idx[j], 3]
                        col = tree_col[t]
                        for w in range(width):
                            out[col + w] += values[leaf, w]
    return -1


@kernel()
def forest_serial(
    X: np.ndarray,
    code: np.ndarray,
    params: np.ndarray,
    round32: np.ndarray,
    reject: np.ndarray,
    cats: np.ndarray,
    nodes: np.ndarray,
    threshold: np.ndarray,
    values: np.ndarray,
    roots: np.ndarray,
    block_depth: np.ndarray,
    tree_col: np.ndarray,
    left_bits: np.ndarray,
    known_bits: np.ndarray,
    feature_bits: np.ndarray,
    init: np.ndarray,
    mode: int,
    divisor: float,
    link: int,
    n_classes: int,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Outputs of every row, one thread: ``(values, label_index, status)``."""
    raw = np.empty((X.shape[0], init.shape[0]))
    status = forest_rows(
        X,
        0,
        X.shape[0],
        code,
        params,
        round32,
        reject,
        cats,
        nodes,
        threshold,
        values,
        roots,
        block_depth,
        tree_col,
        left_bits,
        known_bits,
        feature_bits,
        init,
        raw,
    )
    out, labels = finish(raw, mode, divisor, link, n_classes)
    return out, labels, status


@kernel(parallel=True)
def forest_parallel(
    X: np.ndarray,
    code: np.ndarray,
    params: np.ndarray,
    round32: np.ndarray,
    reject: np.ndarray,
    cats: np.ndarray,
    nodes: np.ndarray,
    threshold: np.ndarray,
    values: np.ndarray,
    roots: np.ndarray,
    block_depth: np.ndarray,
    tree_col: np.ndarray,
    left_bits: np.ndarray,
    known_bits: np.ndarray,
    feature_bits: np.ndarray,
    init: np.ndarray,
    mode: int,
    divisor: float,
    link: int,
    n_classes: int,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Same as ``forest_serial``, rows split in chunks over numba's thread pool."""
    n = X.shape[0]
    raw = np.empty((n, init.shape[0]))
    chunk = PARALLEL_CHUNK_ROWS
    n_chunks = (n + chunk - 1) // chunk
    statuses = np.full(n_chunks, -1, dtype=np.int64)
    for c in prange(n_chunks):
        statuses[c] = forest_rows(
            X,
            c * chunk,
            min(n, (c + 1) * chunk),
            code,
            params,
            round32,
            reject,
            cats,
            nodes,
            threshold,
            values,
            roots,
            block_depth,
            tree_col,
            left_bits,
            known_bits,
            feature_bits,
            init,
            raw,
        )
    out, labels = finish(raw, mode, divisor, link, n_classes)
    return out, labels, first_failure(statuses)
