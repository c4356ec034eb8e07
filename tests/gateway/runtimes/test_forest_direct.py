"""Big forests through ``forest_direct``: unlimited depth, 500 features, multiclass and
regression, forests large enough for its 512-row blocks, rows with NaN and infinity; both
walks (eight trees per row for a few rows, one tree for many rows at once) on every row count
around their boundaries."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestRegressor,
)

from gateway.runtimes import compile_model
from gateway.runtimes.numba.forest_direct import (
    BIG_FOREST_BYTES,
    LOCKSTEP_MIN_ROWS,
    LOCKSTEP_ROWS,
    ROWS_AT_ONCE,
)

NODE_BYTES = 16


def _nodes(model: Any) -> int:
    return sum(int(e.tree_.node_count) for e in model.estimators_)


@pytest.fixture(scope="module")
def wide_regressor() -> tuple[Any, np.ndarray]:
    """Unlimited depth on 500 features."""
    X, y = make_regression(3500, 500, n_informative=20, noise=5.0, random_state=0)
    X = X.astype(np.float32)
    model = RandomForestRegressor(30, random_state=0).fit(X[:2000], y[:2000])
    return model, X[2000:]


@pytest.fixture(scope="module")
def multiclass_with_nan() -> tuple[Any, np.ndarray]:
    """Unlimited depth, 5 classes, fitted with missing values (NaN is routed, not refused)."""
    X, y = make_classification(3500, 20, n_informative=10, n_classes=5, flip_y=0.05, random_state=0)
    X = X.astype(np.float32)
    X[np.random.default_rng(0).random(X.shape) < 0.05] = np.nan
    model = ExtraTreesClassifier(30, random_state=0).fit(X[:2000], y[:2000])
    return model, X[2000:]


def test_big_regressor_matches_sklearn_across_row_blocks(
    wide_regressor: tuple[Any, np.ndarray],
) -> None:
    model, rows = wide_regressor
    assert _nodes(model) * NODE_BYTES > BIG_FOREST_BYTES  # the big-forest blocks (128 rows here)
    rt = compile_model(model, "numba")
    assert rt.kernel.direct is not None and rt.kernel.direct.rows_at_once(500) == 128
    for X in (rows, rows[:1], rows[:129], rows[:513], rows[7:8]):
        np.testing.assert_allclose(rt.predict(X)["predict"], model.predict(X), rtol=1e-12)


def test_big_regressor_refuses_infinity_and_routes_nan_like_sklearn(
    wide_regressor: tuple[Any, np.ndarray],
) -> None:
    model, rows = wide_regressor
    rt = compile_model(model, "numba")
    X = rows[:600].copy()
    X[517, 499] = np.inf
    with pytest.raises(ValueError):
        model.predict(X)
    with pytest.raises(ValueError, match=r"row 517, column 499 is infinite"):
        rt.predict(X)
    X[517, 499] = np.nan  # fitted without NaN: scikit-learn still routes it
    X[::5, 3] = np.nan
    np.testing.assert_allclose(rt.predict(X)["predict"], model.predict(X), rtol=1e-12)


def test_multiclass_with_nan_matches_sklearn(multiclass_with_nan: tuple[Any, np.ndarray]) -> None:
    model, rows = multiclass_with_nan
    assert _nodes(model) * NODE_BYTES > BIG_FOREST_BYTES
    rt = compile_model(model, "numba")
    X = rows.copy()
    X[::3, 4] = np.nan  # whole rows of NaN-carrying values, in every block
    X[5] = np.nan
    X[9, 0] = np.float32(3.0e38)
    X[11, 1] = np.float32(-1.0e-40)
    for batch in (X, X[:1], X[5:6], X[:64]):
        got = rt.predict(batch)
        np.testing.assert_array_equal(got["predict"], model.predict(batch))
        np.testing.assert_allclose(got["predict_proba"], model.predict_proba(batch), atol=1e-12)
    with pytest.raises(ValueError, match=r"row 2, column 3 is infinite"):
        bad = X[:4].copy()
        bad[2, 3] = -np.inf
        rt.predict(bad)


@pytest.fixture(scope="module")
def uneven_forests() -> tuple[list[tuple[Any, Any]], np.ndarray]:
    """Trees of very different depths in one model (one-leaf trees among deep ones), binary
    and multiclass boosting, fitted with missing values."""
    X, y = make_classification(2500, 8, n_informative=5, n_classes=3, random_state=1)
    X = X.astype(np.float32)
    X[np.random.default_rng(1).random(X.shape) < 0.1] = np.nan
    binary = (y > 0).astype(int)
    models = [
        # max_leaf_nodes=2 makes stumps; max_depth=None lets others grow deep
        HistGradientBoostingClassifier(
            max_iter=12, max_leaf_nodes=None, max_depth=None, min_samples_leaf=2, random_state=0
        ).fit(X[:1500], y[:1500]),
        HistGradientBoostingClassifier(max_iter=9, max_leaf_nodes=2, random_state=0).fit(
            X[:1500], binary[:1500]
        ),
        GradientBoostingClassifier(n_estimators=11, max_depth=2, random_state=0).fit(
            np.nan_to_num(X[:1500]), binary[:1500]
        ),
    ]
    return [(m, compile_model(m, "numba")) for m in models], X[1500:]


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    start=st.integers(0, 300),
    n=st.sampled_from(
        [
            1,
            LOCKSTEP_MIN_ROWS - 1,
            LOCKSTEP_MIN_ROWS,
            LOCKSTEP_MIN_ROWS + 1,
            LOCKSTEP_ROWS - 1,
            LOCKSTEP_ROWS + 1,
            ROWS_AT_ONCE + LOCKSTEP_MIN_ROWS - 1,  # a last block for the per-row walk
            2 * ROWS_AT_ONCE + 3,
            400,
        ]
    ),
    nan_rows=st.lists(st.integers(0, 399), max_size=3),
)
def test_both_walks_match_sklearn_at_every_row_count(
    uneven_forests: tuple[list[tuple[Any, Any]], np.ndarray],
    start: int,
    n: int,
    nan_rows: list[int],
) -> None:
    models, rows = uneven_forests
    X = rows[start : start + n].copy()
    for r in nan_rows:
        if r < X.shape[0]:
            X[r] = np.nan  # a whole row of NaN in one lockstep group, none in the others
    for model, rt in models:
        batch = np.nan_to_num(X) if isinstance(model, GradientBoostingClassifier) else X
        got = rt.predict(batch)
        np.testing.assert_array_equal(got["predict"], model.predict(batch))
        np.testing.assert_allclose(got["predict_proba"], model.predict_proba(batch), atol=1e-12)
        one_by_one = np.concatenate(
            [rt.predict(batch[i : i + 1])["predict_proba"] for i in range(batch.shape[0])]
        )
        np.testing.assert_array_equal(got["predict_proba"], one_by_one)
