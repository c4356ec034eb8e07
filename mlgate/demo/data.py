"""The demo's data and models: scikit-learn's bundled breast-cancer set, nothing downloaded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

# A new imaging device reads these features 25% higher: the drift the demo injects half way.
DRIFTED_PREFIXES = ("mean_", "worst_")
DRIFT_FACTOR = 1.25


@dataclass(frozen=True)
class DemoData:
    """The demo's training and holdout split, features as polars frames."""

    X_train: pl.DataFrame
    X_test: pl.DataFrame
    y_train: np.ndarray
    y_test: np.ndarray

    @property
    def feature_names(self) -> list[str]:
        return self.X_train.columns


def load_data(*, seed: int = 0) -> DemoData:
    """Breast-cancer data (bundled with scikit-learn), snake_case feature names, 75/25 split."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    bunch = load_breast_cancer()
    names = [str(n).replace(" ", "_") for n in bunch.feature_names]
    X = pl.DataFrame(bunch.data, schema=names, orient="row")
    train_idx, test_idx = train_test_split(
        np.arange(X.height), test_size=0.25, random_state=seed, stratify=bunch.target
    )
    return DemoData(X[train_idx], X[test_idx], bunch.target[train_idx], bunch.target[test_idx])


def train_models(data: DemoData) -> list[tuple[str, Any, dict[str, float]]]:
    """Three candidate models (description, fitted estimator, holdout metrics): the first
    becomes the champion, the second the canary, the third a shadow."""
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = data.X_train.to_numpy().astype(np.float32)
    X_test = data.X_test.to_numpy().astype(np.float32)
    candidates = [
        (
            "scaled logistic regression",
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        ),
        (
            "histogram gradient boosting",
            HistGradientBoostingClassifier(max_iter=100, random_state=0),
        ),
        (
            "random forest, 100 trees",
            RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0),
        ),
    ]
    out = []
    for description, model in candidates:
        model.fit(X, data.y_train)
        proba = model.predict_proba(X_test)[:, 1]
        metrics = {
            "accuracy": float(accuracy_score(data.y_test, model.predict(X_test))),
            "auc": float(roc_auc_score(data.y_test, proba)),
        }
        out.append((description, model, metrics))
    return out


def traffic(
    data: DemoData, rows: int, *, drifted: bool, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` production-like rows (features float32, true labels), drawn with replacement
    from the training rows the reference sample comes from, so that clean traffic has the
    reference's distribution; ``drifted`` scales the mean_/worst_ features."""
    rng = np.random.default_rng(seed)
    X_all = data.X_train.to_numpy()
    pick = rng.integers(0, len(X_all), size=rows)
    X = X_all[pick].copy()
    if drifted:
        cols = [i for i, n in enumerate(data.feature_names) if n.startswith(DRIFTED_PREFIXES)]
        X[:, cols] *= DRIFT_FACTOR
    return X.astype(np.float32), data.y_train[pick]
