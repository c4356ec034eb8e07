"""onnx backend: arbitrary ONNX classifiers/regressors, export options, session settings."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from skl2onnx import to_onnx
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression

from gateway.runtimes import UnsupportedModel, compile_model
from registry.onnx_export import export_onnx


@pytest.fixture(scope="module")
def clf() -> tuple[LogisticRegression, np.ndarray]:
    X, y = make_classification(200, 5, n_informative=3, n_classes=3, random_state=0)
    X = X.astype(np.float32)
    return LogisticRegression().fit(X, np.array(["ant", "bee", "cat"])[y]), X


def test_zipmap_classifier_from_elsewhere_maps_to_predict_and_proba(clf) -> None:
    model, X = clf
    data = to_onnx(model, X[:1]).SerializeToString()  # default skl2onnx: ZipMap, string labels
    rt = compile_model(data, "onnx")
    out = rt.predict(X[:20])
    assert rt.task == "classification"
    assert list(rt.classes) == ["ant", "bee", "cat"]
    np.testing.assert_array_equal(out["predict"], model.predict(X[:20]))
    np.testing.assert_allclose(out["predict_proba"], model.predict_proba(X[:20]), atol=1e-5)


def test_regressor_from_bytes_and_threads_and_parallel_mode() -> None:
    X, y = make_regression(200, 4, random_state=0)
    X = X.astype(np.float32)
    model = RandomForestRegressor(5, max_depth=4, random_state=0).fit(X, y)
    data = export_onnx(model)
    rt = compile_model(data, "onnx", threads=2, execution_mode="parallel")
    assert rt.task == "regression" and rt.classes is None and rt.n_features == 4
    np.testing.assert_allclose(rt.predict(X)["predict"], model.predict(X), rtol=1e-5)


def test_export_is_float32_without_zipmap_and_keeps_feature_names(clf) -> None:
    model, X = clf
    data = export_onnx(model, feature_names=["a", "b", "c", "d", "e"])
    proto = onnx.load_from_string(data)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [o.name for o in proto.graph.output] == ["label", "probabilities"]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["feature_names"]) == ["a", "b", "c", "d", "e"]
    with pytest.raises(ValueError, match="2 feature_names for 5 input columns"):
        export_onnx(model, feature_names=["a", "b"])


class Stump(ClassifierMixin, BaseEstimator):
    def fit(self, X: np.ndarray, y: np.ndarray) -> Stump:
        self.classes_ = np.unique(y)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.repeat(self.classes_[:1], len(X))


def test_estimator_skl2onnx_cannot_convert_is_unsupported(clf) -> None:
    _, X = clf
    with pytest.raises(UnsupportedModel, match="Stump"):
        compile_model(Stump().fit(X, np.arange(len(X)) % 2), "onnx")


def test_bad_execution_mode_is_refused(clf) -> None:
    model, _ = clf
    with pytest.raises(ValueError, match="execution_mode"):
        compile_model(export_onnx(model), "onnx", execution_mode="turbo")
