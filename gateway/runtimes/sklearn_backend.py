"""``SklearnRuntime``: the plain fallback, the fitted estimator behind the ``Runtime`` protocol."""

from __future__ import annotations

from typing import Any

import numpy as np

from gateway.runtimes.inputs import as_float32_rows


class SklearnRuntime:
    """Calls the estimator's own ``predict`` (and ``predict_proba`` for classifiers).

    scikit-learn validates the input itself and raises ``ValueError`` for NaN or infinity
    where the model refuses them. Thread-safe as far as scikit-learn's predict is (it is for
    every estimator the numba backend supports); it holds the GIL for its Python overhead.
    """

    backend = "sklearn"

    def __init__(self, model: Any) -> None:
        if not hasattr(model, "predict") or not hasattr(model, "n_features_in_"):
            raise TypeError(
                f"sklearn backend needs a fitted estimator with predict and n_features_in_, "
                f"got {type(model).__name__}"
            )
        self.model = model
        self.n_features = int(model.n_features_in_)
        self.classes = np.asarray(model.classes_) if hasattr(model, "classes_") else None
        self.task = "classification" if self.classes is not None else "regression"
        self.allows_nan = bool(model.__sklearn_tags__().input_tags.allow_nan)
        self._has_proba = self.classes is not None and hasattr(model, "predict_proba")

    def __repr__(self) -> str:
        return f"SklearnRuntime({type(self.model).__name__}, n_features={self.n_features})"

    def predict(self, X: np.ndarray) -> dict[str, np.ndarray]:
        X = as_float32_rows(X, self.n_features)
        if X.shape[0] == 0:
            out: dict[str, np.ndarray] = {
                "predict": self.classes[:0].copy() if self.classes is not None else np.empty(0)
            }
            if self._has_proba and self.classes is not None:
                out["predict_proba"] = np.empty((0, len(self.classes)))
            return out
        # scikit-learn refuses bad values with ValueError; numpy's warnings on the way add nothing
        with np.errstate(all="ignore"):
            out = {"predict": np.asarray(self.model.predict(X))}
            if self._has_proba:
                proba = self.model.predict_proba(X)
                out["predict_proba"] = np.asarray(proba, dtype=np.float64)
        if self.classes is None:
            out["predict"] = out["predict"].astype(np.float64, copy=False)
        return out
