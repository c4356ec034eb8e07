"""The demo's data: River's Agrawal loan-approval stream, whose labelling rule switches
mid-stream (a concept change: the applicants look the same, who repays changes)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import polars as pl

FEATURES = ["salary", "commission", "age", "elevel", "car", "zipcode", "hvalue", "hyears", "loan"]
BEFORE = 0  # Agrawal's classification function before the change ...
AFTER = 2  # ... and after it


def agrawal(function: int, rows: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` examples of Agrawal function ``function``: float32 features, 0/1 labels."""
    from river.datasets import synth

    stream = synth.Agrawal(classification_function=function, seed=seed)
    pairs = list(itertools.islice(stream, rows))
    X = np.array([[x[f] for f in FEATURES] for x, _ in pairs], dtype=np.float32)
    y = np.array([int(label) for _, label in pairs], dtype=np.int64)
    return X, y


def train_champion(rows: int = 3000, *, seed: int = 1) -> tuple[Any, pl.DataFrame, float]:
    """Version 1: gradient boosting on the rule before the change. Returns the model, its
    reference sample (features and the ``label`` column, so the trainer can learn from it
    too) and its accuracy on fresh rows of the same rule."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = agrawal(BEFORE, rows, seed=seed)
    model = HistGradientBoostingClassifier(random_state=0).fit(X, y)
    X_test, y_test = agrawal(BEFORE, 1000, seed=seed + 100)
    accuracy = float(np.mean(model.predict(X_test) == y_test))
    reference = pl.DataFrame(X, schema=FEATURES).with_columns(pl.Series("label", y))
    return model, reference, accuracy


class Traffic:
    """An endless source of rows: the rule before the change until ``drift()``, then after."""

    def __init__(self, *, seed: int = 7, chunk: int = 500) -> None:
        self.function = BEFORE
        self._seed = seed
        self._chunk = chunk
        self._X = np.empty((0, len(FEATURES)), dtype=np.float32)
        self._y = np.empty(0, dtype=np.int64)
        self._i = 0

    def drift(self) -> None:
        self.function = AFTER
        self._X, self._y, self._i = self._X[:0], self._y[:0], 0

    def next(self) -> tuple[np.ndarray, int]:
        if self._i >= len(self._y):
            self._seed += 1
            self._X, self._y = agrawal(self.function, self._chunk, seed=self._seed)
            self._i = 0
        row, label = self._X[self._i], int(self._y[self._i])
        self._i += 1
        return row, label
