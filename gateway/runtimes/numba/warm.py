"""Compile every kernel family of the numba runtime once, so that numba's on-disk cache holds
them before the first model is served (``mlgate kernels warm``, run by ``make``'s install).

The kernels are generic per family: a model is data (flat arrays), so the machine code depends
only on the argument types, not on the fitted values. One tiny model per family and input kind
reaches every type signature a served model reaches, and compiling it fills the cache that a
later process (a gateway worker, a registration, a test) loads instead of compiling: about
0.1 s instead of 5-30 s per family.

The families and the kinds of input they see:

- trees (decision trees, random forests, extra trees, gradient boosting, histogram boosting):
  float32 rows read directly (no preprocessing); float32 rows through a preprocessing program,
  thresholds in float32; float64 rows after a one-hot encoding;
- linear models (with or without element-wise preprocessing): float32 rows; float64 rows after
  a one-hot encoding;
- multi-layer perceptrons: weights in float64 or float32 (as scikit-learn fitted them), one to
  three hidden layers (the weights travel as a tuple, whose length is part of the type);
- the one-hot expansion itself.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from gateway.runtimes.numba.compile import compile_numba

if TYPE_CHECKING:
    from collections.abc import Callable

ROWS = 64  # rows of the tiny training sets
FEATURES = 4


@dataclass(frozen=True)
class Sample:
    """A tiny fitted model of one family and input kind."""

    family: str
    what: str
    fit: Callable[[np.ndarray, np.ndarray], Any]
    parallel: bool = False  # trees also have a multi-threaded kernel (``parallel_rows``)


def _samples() -> tuple[Sample, ...]:
    # scikit-learn is imported here: the gateway imports this module only when warming
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    def onehot(estimator: Any) -> Any:
        return make_pipeline(OneHotEncoder(handle_unknown="ignore"), estimator)

    return (
        Sample(
            "trees",
            "random forest",
            lambda X, y: RandomForestClassifier(n_estimators=2).fit(X, y),
            True,
        ),
        Sample(
            "trees",
            "histogram boosting",
            lambda X, y: HistGradientBoostingClassifier(max_iter=2).fit(X, y),
            True,
        ),
        Sample(
            "trees",
            "gradient boosting",
            lambda X, y: GradientBoostingClassifier(n_estimators=2).fit(X, y),
        ),
        Sample(
            "trees",
            "scaler + random forest",  # preprocessing: the general kernel, not forest_direct
            lambda X, y: make_pipeline(StandardScaler(), RandomForestClassifier(2)).fit(X, y),
        ),
        Sample(
            "trees",
            "one-hot + random forest",
            lambda X, y: onehot(RandomForestClassifier(n_estimators=2)).fit(X.round(), y),
        ),
        Sample("linear", "logistic regression", lambda X, y: LogisticRegression().fit(X, y)),
        Sample(
            "linear",
            "scaler + logistic regression",
            lambda X, y: make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y),
        ),
        Sample(
            "linear",
            "one-hot + logistic regression",
            lambda X, y: onehot(LogisticRegression()).fit(X.round(), y),
        ),
        *(
            Sample("mlp", f"{len(hidden)} hidden layer(s), {dtype.__name__}", _mlp(hidden, dtype))
            for dtype in (np.float64, np.float32)
            for hidden in ((4,), (4, 4), (4, 4, 4))
        ),
    )


def _mlp(hidden: tuple[int, ...], dtype: type) -> Callable[[np.ndarray, np.ndarray], Any]:
    from sklearn.neural_network import MLPClassifier

    def fit(X: np.ndarray, y: np.ndarray) -> Any:
        return MLPClassifier(hidden_layer_sizes=hidden, max_iter=2).fit(X.astype(dtype), y)

    return fit


@dataclass(frozen=True)
class Warmed:
    """One sample compiled: its family, what it was, and the seconds it took."""

    family: str
    what: str
    seconds: float


FAMILIES = ("trees", "linear", "mlp")


def warm_kernels(*, parallel: bool = True, families: tuple[str, ...] = FAMILIES) -> list[Warmed]:
    """Compile (or load from numba's cache) the kernels of every sample model of ``families``
    and run them on one row and on a batch; ``parallel``: the trees' multi-threaded kernels
    too. The seconds exclude fitting the samples."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(ROWS, FEATURES)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    done: list[Warmed] = []
    for sample in _samples():
        if sample.family not in families:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings of 2-iteration fits
            model = sample.fit(X, y)
        start = time.perf_counter()
        rows = X.round() if sample.what.startswith("one-hot") else X
        runtime = compile_numba(model)
        runtime.predict(rows[:1])
        runtime.predict(rows)
        if sample.parallel and parallel:
            compile_numba(model, parallel_rows=1).predict(rows)
        done.append(Warmed(sample.family, sample.what, time.perf_counter() - start))
    return done
