"""Fitted scikit-learn tree models -> ``Forest`` arrays plus how to finish their raw scores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gateway.runtimes.numba import finish as fin
from gateway.runtimes.numba.forest import (
    CATEGORICAL,
    MISSING_RIGHT,
    TREES_AT_ONCE,
    Forest,
    layout_tree,
)


@dataclass(frozen=True)
class TreeSource:
    """One tree in scikit-learn's own node order."""

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    flags: np.ndarray
    aux: np.ndarray  # bitset row for categorical splits (already offset)
    is_leaf: np.ndarray
    values: np.ndarray  # [n_nodes, W]; only leaf rows are used
    col: int


def build_forest(
    trees: list[TreeSource],
    *,
    init: np.ndarray,
    n_features: int,
    left_bits: np.ndarray | None = None,
    known_bits: np.ndarray | None = None,
    feature_bits: np.ndarray | None = None,
    float32_inputs: bool = True,
) -> Forest:
    """Lay ``trees`` out for the kernels; ``float32_inputs``: every value reaching the trees is
    a float32 number (then thresholds are stored as float32, see forest.py)."""
    n_nodes = sum(t.left.shape[0] for t in trees) + 1  # + one dummy leaf for padding
    n_leaves = sum(int(t.is_leaf.sum()) for t in trees) + 1
    width = trees[0].values.shape[1]
    nodes = np.zeros((n_nodes, 4), dtype=np.int32)
    threshold = np.zeros(n_nodes)
    values = np.zeros((n_leaves, width))
    n_blocks = -(-len(trees) // TREES_AT_ONCE)
    dummy = n_nodes - 1
    roots = np.full(n_blocks * TREES_AT_ONCE, dummy, dtype=np.int32)
    depths = np.zeros(len(trees), dtype=np.int32)
    base = 0
    leaf_base = 0
    for t, tree in enumerate(trees):
        leaf_of = np.full(tree.left.shape[0], -1, dtype=np.int64)
        depths[t] = layout_tree(
            tree.left.astype(np.int64),
            tree.right.astype(np.int64),
            tree.feature.astype(np.int64),
            tree.threshold.astype(np.float64),
            tree.flags.astype(np.int64),
            tree.aux.astype(np.int64),
            tree.is_leaf.astype(np.bool_),
            base,
            leaf_base,
            nodes,
            threshold,
            leaf_of,
        )
        mask = leaf_of >= 0
        values[leaf_of[mask]] = tree.values[mask]
        roots[t] = base
        base += tree.left.shape[0]
        leaf_base += int(mask.sum())
    nodes[dummy] = (0, dummy, 0, n_leaves - 1)
    threshold[dummy] = np.inf
    if float32_inputs:
        nodes[:, 2] = round_down32(threshold).view(np.int32)
        threshold_arg = nodes.view(np.float32)[:, 2]
    else:
        threshold_arg = threshold
    block_depth = np.array(
        [depths[b * TREES_AT_ONCE : (b + 1) * TREES_AT_ONCE].max() for b in range(n_blocks)],
        dtype=np.int32,
    )
    return Forest(
        nodes=nodes,
        threshold=threshold_arg,
        values=values,
        roots=roots,
        block_depth=block_depth,
        tree_depth=depths,
        tree_col=np.array([t.col for t in trees], dtype=np.int32),
        left_bits=left_bits if left_bits is not None else np.zeros((0, 8), np.uint32),
        known_bits=known_bits if known_bits is not None else np.zeros((1, 8), np.uint32),
        feature_bits=(feature_bits if feature_bits is not None else np.zeros(n_features, np.int32)),
        init=np.ascontiguousarray(init, dtype=np.float64),
    )


def round_down32(values: np.ndarray) -> np.ndarray:
    """The largest float32 not above each float64 value.

    >>> float(round_down32(np.array([0.1]))[0]) <= 0.1
    True
    """
    with np.errstate(over="ignore"):
        out = values.astype(np.float32)
    above = out.astype(np.float64) > values
    out[above] = np.nextafter(out[above], np.float32(-np.inf))
    return out


def sklearn_tree_source(tree: Any, *, values: np.ndarray, col: int = 0) -> TreeSource:
    """A ``sklearn.tree._tree.Tree`` (``tree_``) with precomputed leaf ``values``."""
    left = np.asarray(tree.children_left)
    mgl = np.asarray(tree.missing_go_to_left)
    return TreeSource(
        left=np.where(left < 0, 0, left),
        right=np.maximum(np.asarray(tree.children_right), 0),
        feature=np.maximum(np.asarray(tree.feature), 0),
        threshold=np.asarray(tree.threshold),
        flags=np.where(mgl == 0, MISSING_RIGHT, 0),
        aux=np.zeros(left.shape[0], dtype=np.int64),
        is_leaf=left < 0,
        values=values,
        col=col,
    )


def classifier_leaf_values(tree: Any, n_classes: int) -> np.ndarray:
    """Leaf class fractions as ``DecisionTreeClassifier.predict_proba`` returns them (scikit-learn
    >= 1.4 stores normalized values in ``tree_.value`` and no longer re-normalizes)."""
    return np.array(tree.value[:, 0, :n_classes], dtype=np.float64)


@dataclass(frozen=True)
class TreeModel:
    forest: Forest
    mode: int
    divisor: float
    link: int
    n_classes: int


def convert_forest(est: Any, trees: list[Any], *, classifier: bool) -> TreeModel:
    """DecisionTree / RandomForest / ExtraTrees, classifier or regressor."""
    n_features = int(est.n_features_in_)
    sources = []
    for tree in trees:
        if classifier:
            values = classifier_leaf_values(tree, len(est.classes_))
        else:
            values = np.array(tree.value[:, 0, :1])
        sources.append(sklearn_tree_source(tree, values=values))
    width = sources[0].values.shape[1]
    forest = build_forest(sources, init=np.zeros(width), n_features=n_features)
    mode = fin.PROBA_AVERAGE if classifier else fin.REGRESSION
    return TreeModel(forest, mode, float(len(trees)), 0, width if classifier else 0)


def convert_gradient_boosting(est: Any, *, classifier: bool) -> TreeModel:
    n_features = int(est.n_features_in_)
    stages = est.estimators_
    lr = float(est.learning_rate)
    sources = []
    for i in range(stages.shape[0]):
        for k in range(stages.shape[1]):
            tree = stages[i, k].tree_
            values = lr * np.array(tree.value[:, 0, :1])
            sources.append(sklearn_tree_source(tree, values=values, col=k))
    probe = np.zeros((1, n_features), dtype=np.float32)
    init = np.asarray(est._raw_predict_init(probe), dtype=np.float64)[0]
    forest = build_forest(sources, init=init, n_features=n_features)
    if not classifier:
        return TreeModel(forest, fin.REGRESSION, 1.0, 0, 0)
    k = stages.shape[1]
    mode = fin.BINARY_DECISION_GE if k == 1 else fin.SOFTMAX_DECISION
    return TreeModel(forest, mode, 1.0, 0, max(k, 2))


def convert_hist_gradient_boosting(
    est: Any, *, classifier: bool, column_of: np.ndarray, float32_inputs: bool
) -> TreeModel:
    """HistGradientBoosting; ``column_of[f]`` is the input column of preprocessed feature f."""
    n_features = int(est.n_features_in_)
    predictors = est._predictors
    sources = []
    bit_rows: list[np.ndarray] = []
    n_bits = 0
    for iteration in predictors:
        for k, predictor in enumerate(iteration):
            nodes = predictor.nodes
            is_cat = nodes["is_categorical"].astype(bool)
            mgl = nodes["missing_go_to_left"].astype(bool)
            flags = np.where(mgl, 0, MISSING_RIGHT) | np.where(is_cat, CATEGORICAL, 0)
            bits = np.asarray(predictor.raw_left_cat_bitsets, dtype=np.uint32)
            aux = np.where(is_cat, nodes["bitset_idx"].astype(np.int64) + n_bits, 0)
            if bits.shape[0]:
                bit_rows.append(bits)
                n_bits += bits.shape[0]
            sources.append(
                TreeSource(
                    left=nodes["left"].astype(np.int64),
                    right=nodes["right"].astype(np.int64),
                    feature=column_of[nodes["feature_idx"].astype(np.int64)],
                    threshold=nodes["num_threshold"].astype(np.float64),
                    flags=flags,
                    aux=aux,
                    is_leaf=nodes["is_leaf"].astype(bool),
                    values=nodes["value"].astype(np.float64)[:, None],
                    col=k,
                )
            )
    known, f_idx_map = est._bin_mapper.make_known_categories_bitsets()
    feature_bits = np.zeros(n_features, dtype=np.int32)
    feature_bits[column_of] = np.asarray(f_idx_map, dtype=np.int32)
    left_bits = np.concatenate(bit_rows) if bit_rows else np.zeros((0, 8), np.uint32)
    known_bits = np.asarray(known, dtype=np.uint32) if len(known) else np.zeros((1, 8), np.uint32)
    init = np.asarray(est._baseline_prediction, dtype=np.float64).ravel()
    forest = build_forest(
        sources,
        init=init,
        n_features=n_features,
        left_bits=np.ascontiguousarray(left_bits),
        known_bits=np.ascontiguousarray(known_bits),
        feature_bits=feature_bits,
    )
    if classifier:
        k = len(predictors[0])
        mode = fin.BINARY_DECISION if k == 1 else fin.SOFTMAX_DECISION
        return TreeModel(forest, mode, 1.0, 0, max(k, 2))
    link_name = type(est._loss.link).__name__
    return TreeModel(forest, fin.REGRESSION, 1.0, 1 if link_name == "LogLink" else 0, 0)
