"""The contract every runtime passes, for every supported estimator.

numba and sklearn: labels identical to scikit-learn, probabilities and regression values
within 1e-6 (relative 1e-9 for huge outputs), the same inputs refused. onnx computes in
float32: values within float32 precision, labels identical where scikit-learn's top two
probabilities are not within 1e-4 of a tie.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.gateway.runtimes.conftest import BACKENDS, Zoo, case_params
from tests.gateway.runtimes.zoo import N_FEATURES, Case, sample_rows

SPECIAL = [np.nan, np.inf, -np.inf, 3.0e38, -3.0e38, 1.0e30, -1.0e-30, 1.0e-40, 0.0, -0.0]
HUGE = 1.0e29

pytestmark = pytest.mark.parametrize("backend", BACKENDS)


def oracle(model: Any, X: np.ndarray) -> dict[str, np.ndarray] | None:
    """scikit-learn's answer, or None when scikit-learn refuses the input."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            out = {"predict": np.asarray(model.predict(X))}
            if hasattr(model, "predict_proba") and hasattr(model, "classes_"):
                out["predict_proba"] = np.asarray(model.predict_proba(X), dtype=np.float64)
    except ValueError:
        return None
    return out


def assert_agrees(backend: str, got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert set(got) == set(want)
    exact = backend != "onnx"
    if "predict_proba" in want:
        atol, rtol = (1e-6, 0.0) if exact else (2e-5, 1e-5)
        np.testing.assert_allclose(got["predict_proba"], want["predict_proba"], rtol, atol)
        assert got["predict_proba"].dtype == np.float64
    if want["predict"].dtype.kind == "f" and "predict_proba" not in want and exact:
        assert got["predict"].dtype == np.float64
        np.testing.assert_allclose(got["predict"], want["predict"], rtol=1e-9, atol=1e-6)
        return
    if want["predict"].dtype.kind == "f" and "predict_proba" not in want:
        np.testing.assert_allclose(got["predict"], want["predict"], rtol=1e-5, atol=2e-5)
        return
    assert got["predict"].dtype == want["predict"].dtype
    if exact or "predict_proba" not in want:
        np.testing.assert_array_equal(got["predict"], want["predict"])
        return
    top2 = np.sort(want["predict_proba"], axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 1e-4
    np.testing.assert_array_equal(got["predict"][clear], want["predict"][clear])


@st.composite
def batches(draw: st.DrawFn, case: Case, backend: str) -> np.ndarray:
    n = draw(st.integers(0, 60))
    X = sample_rows(case, n, seed=draw(st.integers(0, 2**16)))
    specials = [v for v in SPECIAL if backend != "onnx" or not abs(v) >= HUGE]
    if backend == "onnx" and case.data.startswith("categorical"):
        specials = [np.nan, np.inf]  # ONNX OneHotEncoder casts codes to int64: -1e-30 -> 0
    if n:
        for _ in range(draw(st.integers(0, 4))):
            row = draw(st.integers(0, n - 1))
            col = draw(st.integers(0, N_FEATURES - 1))
            X[row, col] = draw(st.sampled_from(specials))
    return X


@pytest.mark.parametrize("case", case_params())
@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_matches_sklearn_on_random_rows(backend: str, case: Case, zoo: Zoo, data: Any) -> None:
    model = zoo.model(case)
    rt = zoo.runtime(backend, case)
    X = data.draw(batches(case, backend))
    want = oracle(model, X) if X.shape[0] else None
    if X.shape[0] == 0:
        got = rt.predict(X)
        assert all(v.shape[0] == 0 for v in got.values())
        return
    nonfinite = not np.isfinite(X).all()
    if want is None or (backend == "onnx" and nonfinite and not rt.allows_nan):
        if backend == "onnx" and not nonfinite:
            return  # onnx does not reproduce every scikit-learn refusal (unknown categories)
        # numba and onnx word their own messages; sklearn raises scikit-learn's
        with pytest.raises(ValueError, match="input X" if backend != "sklearn" else None):
            rt.predict(X)
        return
    assert_agrees(backend, rt.predict(X), want)


@pytest.mark.parametrize("case", case_params())
def test_empty_batch_has_output_shapes(backend: str, case: Case, zoo: Zoo) -> None:
    model = zoo.model(case)
    got = zoo.runtime(backend, case).predict(np.empty((0, N_FEATURES), np.float32))
    want = oracle(model, sample_rows(case, 3, seed=1)[:, :])
    assert want is not None or case.data.startswith("categorical")
    assert got["predict"].shape == (0,)
    if hasattr(model, "predict_proba") and hasattr(model, "classes_"):
        assert got["predict_proba"].shape == (0, len(model.classes_))
        assert got["predict"].dtype == np.asarray(model.classes_).dtype
    else:
        assert "predict_proba" not in got


def _known_rows(case: Case, n: int, seed: int) -> np.ndarray:
    X = sample_rows(case, n, seed)
    if case.data.startswith("categorical") or case.data == "mixed":
        ncat = N_FEATURES if case.data.startswith("categorical") else 2
        X[:, :ncat] = np.minimum(X[:, :ncat], 3)
    return X


@pytest.mark.parametrize("case", case_params())
def test_one_row_and_ten_thousand_rows(backend: str, case: Case, zoo: Zoo) -> None:
    model, rt = zoo.model(case), zoo.runtime(backend, case)
    X = _known_rows(case, 10_000, seed=7)
    if backend == "onnx" or rt.allows_nan is False:
        X = np.nan_to_num(X, nan=0.5)
    want = oracle(model, X)
    assert want is not None
    assert_agrees(backend, rt.predict(X), want)
    one = oracle(model, X[:1])
    assert one is not None
    assert_agrees(backend, rt.predict(X[:1]), one)


@pytest.mark.parametrize("case", case_params())
def test_float64_and_int_inputs_are_converted(backend: str, case: Case, zoo: Zoo) -> None:
    rt = zoo.runtime(backend, case)
    X = np.nan_to_num(_known_rows(case, 20, seed=3), nan=0.0)
    base = rt.predict(X)
    for other in (X.astype(np.float64), np.round(X).astype(np.int64)):
        got = rt.predict(other)
        ref = rt.predict(other.astype(np.float32))
        for key in base:
            np.testing.assert_array_equal(got[key], ref[key])
    with pytest.raises(ValueError, match="float32 range"):
        rt.predict(np.full((1, N_FEATURES), 1e300))


@pytest.mark.parametrize("case", case_params())
def test_wrong_shapes_are_refused_with_a_clear_error(backend: str, case: Case, zoo: Zoo) -> None:
    rt = zoo.runtime(backend, case)
    with pytest.raises(ValueError, match=rf"expected shape \[n, {N_FEATURES}\], got \[2, 5\]"):
        rt.predict(np.zeros((2, N_FEATURES - 1), np.float32))
    with pytest.raises(ValueError, match="2-D"):
        rt.predict(np.zeros(N_FEATURES, np.float32))
    with pytest.raises(ValueError, match="dtype"):
        rt.predict(np.array([["a"] * N_FEATURES]))


@pytest.mark.parametrize("case", case_params())
# scikit-learn's forests warn when called from threads without its config (sklearn backend)
@pytest.mark.filterwarnings("ignore:.*sklearn.utils.parallel.delayed:UserWarning")
def test_four_threads_get_the_same_answers(backend: str, case: Case, zoo: Zoo) -> None:
    rt = zoo.runtime(backend, case)
    batches = [
        np.nan_to_num(_known_rows(case, n, seed=s), nan=0.0)
        for s, n in enumerate([1, 7, 50, 300] * 4)
    ]
    expected = [rt.predict(X) for X in batches]
    results: dict[int, list[dict[str, np.ndarray]]] = {}

    def work(t: int) -> None:
        results[t] = [rt.predict(X) for X in batches[t::4] * 2]

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for t in range(4):
        for i, got in enumerate(results[t]):
            want = expected[t::4][i % len(expected[t::4])]
            for key in want:
                np.testing.assert_array_equal(got[key], want[key])
