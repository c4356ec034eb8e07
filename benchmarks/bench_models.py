"""The six benchmark models of issue 3, fitted once and cached under ``benchmarks/.cache/``."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

CACHE = Path(__file__).resolve().parent / ".cache"
N_FEATURES = 32
HOLDOUT = 20_000
MODEL_NAMES = (
    "random_forest",
    "hist_gradient_boosting",
    "gradient_boosting_regressor",
    "logistic_regression",
    "mlp",
    "pipeline_scaler_logreg",
)
TREE_MODELS = MODEL_NAMES[:3]


@dataclass(frozen=True)
class BenchModel:
    name: str
    model: Any
    holdout: np.ndarray  # float32 [HOLDOUT, 32], rows never seen in training


def _classification(n_train: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # the reference workload (BENCHMARKS.md) plus held-out rows from the same generator
    X, y = make_classification(
        n_samples=n_train + HOLDOUT,
        n_features=N_FEATURES,
        n_informative=16,
        n_redundant=4,
        random_state=0,
    )
    X = X.astype(np.float32)
    return X[:n_train], y[:n_train], X[n_train:]


def _fit(name: str) -> BenchModel:
    if name == "gradient_boosting_regressor":
        X, y = make_regression(20_000 + HOLDOUT, N_FEATURES, n_informative=16, random_state=0)
        X = X.astype(np.float32)
        model = GradientBoostingRegressor(n_estimators=200, max_depth=4, random_state=0)
        model.fit(X[:20_000], y[:20_000])
        return BenchModel(name, model, X[20_000:])
    n_train = 100_000 if name in ("random_forest", "hist_gradient_boosting") else 20_000
    X, y, holdout = _classification(n_train)
    models: dict[str, Any] = {
        "random_forest": RandomForestClassifier(
            n_estimators=100, max_depth=12, random_state=0, n_jobs=2
        ),
        "hist_gradient_boosting": HistGradientBoostingClassifier(
            max_iter=200, early_stopping=False, random_state=0
        ),
        "logistic_regression": LogisticRegression(max_iter=300),
        "mlp": MLPClassifier(hidden_layer_sizes=(64, 64), max_iter=30, random_state=0),
        "pipeline_scaler_logreg": make_pipeline(StandardScaler(), LogisticRegression()),
    }
    model = models[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    if name == "random_forest":
        model.set_params(n_jobs=None)  # served single-threaded, as the reference workload
    return BenchModel(name, model, holdout)


def load(name: str) -> BenchModel:
    """Fit ``name`` or load it from the cache (keyed by scikit-learn's version)."""
    path = CACHE / f"runtimes-{name}-sklearn{sklearn.__version__}.joblib"
    if path.exists():
        model, holdout = joblib.load(path)
        return BenchModel(name, model, holdout)
    CACHE.mkdir(parents=True, exist_ok=True)
    bench = _fit(name)
    tmp = path.with_suffix(".tmp")
    joblib.dump((bench.model, bench.holdout), tmp)
    tmp.replace(path)
    return bench


if __name__ == "__main__":
    import time

    for model_name in MODEL_NAMES:
        start = time.perf_counter()
        load(model_name)
        print(f"{model_name}: {time.perf_counter() - start:.1f} s")
