"""Estimators that misbehave as a canary would: one fails some requests, one is slow.

They are served by the gateway's scikit-learn runtime in a real ``mlgate serve`` process,
loaded from the registry through skops with their type names trusted at registration."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression


class _Wrapped(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    def fit(self, X: Any, y: Any) -> _Wrapped:
        self.inner_ = LogisticRegression(max_iter=500).fit(X, y)
        self.classes_ = self.inner_.classes_
        self.n_features_in_ = int(np.asarray(X).shape[1])
        return self

    def _check(self, X: Any) -> np.ndarray:
        return np.asarray(X, dtype=np.float64)

    def predict(self, X: Any) -> np.ndarray:
        out: np.ndarray = self.inner_.predict(self._check(X))
        return out

    def predict_proba(self, X: Any) -> np.ndarray:
        out: np.ndarray = self.inner_.predict_proba(self._check(X))
        return out


class FlakyClassifier(_Wrapped):
    """Fails every batch holding a row with sepal length above 6.0 (about a third of iris)."""

    def _check(self, X: Any) -> np.ndarray:
        x = np.asarray(X, dtype=np.float64)
        if (x[:, 0] > 6.0).any():
            raise ValueError("flaky model: sepal length above 6.0")
        return x


class SlowClassifier(_Wrapped):
    """Takes 40 ms more per batch."""

    def _check(self, X: Any) -> np.ndarray:
        time.sleep(0.04)  # the model's own cost
        return np.asarray(X, dtype=np.float64)
