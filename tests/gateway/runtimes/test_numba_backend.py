"""numba backend specifics: what it refuses, how it says so, fallback, NaN handling."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from gateway.runtimes import Runtime, UnsupportedModel, compile_model


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(200, 4, n_informative=3, n_redundant=0, random_state=0)
    return X.astype(np.float32), y


def test_unsupported_estimator_names_its_class_and_what_is_supported(data) -> None:
    model = KNeighborsClassifier().fit(*data)
    with pytest.raises(UnsupportedModel, match="KNeighborsClassifier") as info:
        compile_model(model, "numba")
    assert "RandomForestClassifier" in str(info.value)
    assert "HistGradientBoostingClassifier" in info.value.supported


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (
            lambda: make_pipeline(SimpleImputer(add_indicator=True), LogisticRegression()),
            "add_indicator",
        ),
        (lambda: make_pipeline(OneHotEncoder(drop="first"), LogisticRegression()), "drop"),
        (lambda: GradientBoostingClassifier(loss="exponential", n_estimators=3), "exponential"),
        (lambda: SGDClassifier(loss="modified_huber"), "modified_huber"),
        (lambda: make_pipeline(StandardScaler(), KNeighborsClassifier()), "not a supported"),
    ],
)
def test_unsupported_configurations_are_refused(data, make, reason: str) -> None:
    X, y = data
    if "OneHot" in repr(make()):
        X = np.round(np.abs(X))
    model = make().fit(X, y)
    with pytest.raises(UnsupportedModel, match=reason):
        compile_model(model, "numba")


def test_fallback_serves_with_sklearn_and_logs_a_warning(data, caplog) -> None:
    model = KNeighborsClassifier().fit(*data)
    with caplog.at_level(logging.WARNING, logger="gateway.runtimes.factory"):
        rt = compile_model(model, "numba", fallback=True)
    assert rt.backend == "sklearn"
    assert isinstance(rt, Runtime)
    assert "KNeighborsClassifier" in caplog.text
    np.testing.assert_array_equal(rt.predict(data[0])["predict"], model.predict(data[0]))


def test_nan_refused_with_row_and_column_when_the_model_cannot_take_it(data) -> None:
    rt = compile_model(LogisticRegression().fit(*data), "numba")
    assert rt.allows_nan is False
    X = data[0][:3].copy()
    X[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"row 2, column 1 is NaN"):
        rt.predict(X)
    X[2, 1] = np.inf
    with pytest.raises(ValueError, match=r"row 2, column 1 is infinite"):
        rt.predict(X)


def test_nan_routed_like_sklearn_where_the_model_takes_it(data) -> None:
    X, y = data
    X = X.copy()
    X[::7, 0] = np.nan
    model = HistGradientBoostingClassifier(max_iter=5).fit(X, y)
    rt = compile_model(model, "numba")
    assert rt.allows_nan is True
    probe = np.full((3, 4), np.nan, dtype=np.float32)
    probe[1] = np.inf
    np.testing.assert_array_equal(rt.predict(probe)["predict_proba"], model.predict_proba(probe))


def test_nan_through_an_imputer_is_accepted(data) -> None:
    model = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()).fit(*data)
    rt = compile_model(model, "numba")
    X = data[0][:2].copy()
    X[0, 0] = np.nan
    assert rt.allows_nan is True
    np.testing.assert_allclose(rt.predict(X)["predict_proba"], model.predict_proba(X), atol=1e-12)


def test_float32_overflow_inside_a_scaler_is_refused_like_sklearn(data) -> None:
    X, y = data
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X * 1e-3, y)
    rt = compile_model(model, "numba")
    big = np.full((1, 4), 3e38, dtype=np.float32)
    with pytest.raises(ValueError), np.errstate(over="ignore"):
        model.predict(big)
    with pytest.raises(ValueError, match="becomes infinite after preprocessing"):
        rt.predict(big)


def test_unknown_category_is_refused_when_the_encoder_refuses_it() -> None:
    X = np.array([[0.0], [1.0], [2.0]] * 10, dtype=np.float32)
    y = np.array([0, 1, 1] * 10)
    model = make_pipeline(OrdinalEncoder(), LogisticRegression()).fit(X, y)
    rt = compile_model(model, "numba")
    with pytest.raises(ValueError, match="row 1, column 0 is a category unseen"):
        rt.predict(np.array([[1.0], [5.0]], dtype=np.float32))


def test_numba_rejects_onnx_bytes() -> None:
    with pytest.raises(UnsupportedModel, match="onnx backend"):
        compile_model(b"not a model", "numba")


def test_unknown_backend_is_a_value_error(data) -> None:
    with pytest.raises(ValueError, match="backend: expected one of"):
        compile_model(LogisticRegression().fit(*data), "tvm")


def test_read_only_and_strided_inputs_give_the_same_answers(data) -> None:
    model = LogisticRegression().fit(*data)
    rt = compile_model(model, "numba")
    X = data[0][:10]
    frozen = np.frombuffer(X.tobytes(), dtype=np.float32).reshape(X.shape)
    assert not frozen.flags.writeable
    wide = np.repeat(X, 2, axis=1)[:, ::2]
    want = rt.predict(X)["predict_proba"]
    np.testing.assert_allclose(want, model.predict_proba(X), atol=1e-6)  # float32 coef_
    for variant in (frozen, wide, np.asfortranarray(X)):
        np.testing.assert_array_equal(rt.predict(variant)["predict_proba"], want)
