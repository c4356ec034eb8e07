"""gateway.loading.load_runtime: from a registered ModelVersion to the right backend."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.neighbors import KNeighborsClassifier

from gateway.loading import load_runtime
from gateway.runtimes import UnsupportedModel
from registry import Registry


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(200, 4, n_informative=3, n_redundant=0, random_state=0)
    return X.astype(np.float32), y


def test_sklearn_flavor_compiles_with_numba(tmp_path: Path, data) -> None:
    reg = Registry(str(tmp_path))
    model = RandomForestClassifier(5, max_depth=4, random_state=0).fit(*data)
    mv = reg.register("forest", model)
    rt = load_runtime(reg, mv)
    assert rt.backend == "numba"
    np.testing.assert_array_equal(
        rt.predict(data[0])["predict_proba"], model.predict_proba(data[0])
    )


def test_onnx_flavor_runs_on_onnxruntime(tmp_path: Path, data) -> None:
    reg = Registry(str(tmp_path))
    model = RandomForestClassifier(5, max_depth=4, random_state=0).fit(*data)
    mv = reg.register("forest", model, flavor="onnx")
    rt = load_runtime(reg, mv, onnx_threads=2)
    assert rt.backend == "onnx"
    np.testing.assert_array_equal(rt.predict(data[0])["predict"], model.predict(data[0]))
    with pytest.raises(UnsupportedModel, match="ONNX"):
        load_runtime(reg, mv, backend="numba")


def test_uncompilable_model_falls_back_or_raises(tmp_path: Path, data, caplog) -> None:
    reg = Registry(str(tmp_path))
    mv = reg.register("knn", KNeighborsClassifier().fit(*data))
    with caplog.at_level(logging.WARNING, logger="gateway.runtimes.factory"):
        assert load_runtime(reg, mv).backend == "sklearn"
    assert "KNeighborsClassifier" in caplog.text
    with pytest.raises(UnsupportedModel):
        load_runtime(reg, mv, fallback=False)
    assert load_runtime(reg, mv, backend="sklearn").backend == "sklearn"
