"""gateway.runtimes.numba.saved: what a saved runtime refuses to load, and what it keeps.

Every supported estimator's saved runtime passes the whole runtime contract as the
``numba-saved`` backend of test_contract.py; here: the format's own edges.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from gateway.runtimes.numba import saved
from gateway.runtimes.numba.compile import compile_numba
from gateway.runtimes.numba.runtime import DirectForestRuntime
from gateway.runtimes.numba.saved import (
    SPEC,
    SavedRuntimeError,
    code_fingerprint,
    dump_saved,
    load_saved,
)


def _forest() -> tuple[RandomForestClassifier, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)).astype(np.float32)
    y = np.where(X[:, 0] + X[:, 1] > 0, "up", "down").astype(object)  # object labels
    return RandomForestClassifier(7, max_depth=5, random_state=0).fit(X, y), X


def _members(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def _repack(arrays: dict[str, np.ndarray], spec: dict | None = None) -> bytes:
    if spec is not None:
        arrays = {**arrays, SPEC: np.frombuffer(json.dumps(spec).encode(), dtype=np.uint8)}
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def test_forest_keeps_its_fast_path_labels_and_errors() -> None:
    model, X = _forest()
    runtime = compile_numba(model)
    again = load_saved(dump_saved(runtime))
    assert isinstance(again, DirectForestRuntime)
    assert again.classes is not None and again.classes.dtype == object
    out, want = again.predict(X), runtime.predict(X)
    assert out["predict"].tolist() == want["predict"].tolist() == model.predict(X).tolist()
    np.testing.assert_array_equal(out["predict_proba"], want["predict_proba"])
    bad = X[:3].copy()
    bad[1, 2] = np.inf
    with pytest.raises(ValueError) as saved_error:
        again.predict(bad)
    with pytest.raises(ValueError) as compiled_error:
        runtime.predict(bad)
    assert str(saved_error.value) == str(compiled_error.value)
    assert again.model_name == runtime.model_name == "RandomForestClassifier"


def test_parallel_rows_is_the_loaders_choice() -> None:
    model, X = _forest()
    data = dump_saved(compile_numba(model, parallel_rows=0))
    assert load_saved(data).kernel.parallel_rows == 0
    two = load_saved(data, parallel_rows=2)
    assert two.kernel.parallel_rows == 2
    np.testing.assert_array_equal(two.predict(X)["predict_proba"], model.predict_proba(X))


@pytest.mark.parametrize(
    "data",
    [b"", b"not a zip file", b"PK\x03\x04" + b"\x00" * 40],
    ids=["empty", "text", "broken-zip"],
)
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(SavedRuntimeError, match="not a saved runtime"):
        load_saved(data)


def test_foreign_content_is_refused() -> None:
    model = LogisticRegression().fit(np.eye(4, dtype=np.float32), [0, 1, 0, 1])
    arrays = _members(dump_saved(compile_numba(model)))
    spec = json.loads(arrays.pop(SPEC).tobytes())

    wrong_format = {**spec, "format": 99}
    with pytest.raises(SavedRuntimeError, match="format 99"):
        load_saved(_repack(arrays, wrong_format))

    def with_kernel(name: str) -> bytes:
        changed = json.loads(json.dumps(spec))
        changed["runtime"]["kernel"]["fields"]["serial"] = {"kernel": name}
        return _repack(arrays, changed)

    for name in ("os:system", "gateway.runtimes.numba.linear:np", "builtins:eval"):
        with pytest.raises(SavedRuntimeError):
            load_saved(with_kernel(name))

    foreign_class = json.loads(json.dumps(spec))
    foreign_class["runtime"]["program"]["dataclass"] = "Popen"
    with pytest.raises(SavedRuntimeError):
        load_saved(_repack(arrays, foreign_class))

    no_spec = dict(arrays)
    with pytest.raises(SavedRuntimeError):
        load_saved(_repack(no_spec))

    # a pickled (object) member is never unpickled
    pickled = io.BytesIO()
    np.savez(pickled, **{**arrays, SPEC: arrays_spec(spec), "a0": np.array([{}], dtype=object)})
    with pytest.raises(SavedRuntimeError):
        load_saved(pickled.getvalue())


def arrays_spec(spec: dict) -> np.ndarray:
    return np.frombuffer(json.dumps(spec).encode(), dtype=np.uint8)


def test_labels_of_other_types_are_not_saved() -> None:
    model, _ = _forest()
    runtime = compile_numba(model)
    runtime.classes = np.array([("a", 1), None], dtype=object)
    with pytest.raises(SavedRuntimeError, match="object array"):
        dump_saved(runtime)


def test_an_upgraded_scikit_learn_gets_other_entries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A saved runtime is only reused by the code and the scikit-learn that wrote it."""
    current = code_fingerprint()
    monkeypatch.setattr(saved.metadata, "version", lambda name: "999.0")
    code_fingerprint.cache_clear()
    try:
        assert code_fingerprint() != current
    finally:
        monkeypatch.undo()
        code_fingerprint.cache_clear()
    assert code_fingerprint() == current


def test_a_description_missing_parts_is_refused() -> None:
    model, _ = _forest()
    arrays = _members(dump_saved(compile_numba(model)))
    spec = json.loads(arrays.pop(SPEC).tobytes())
    for part in ("kernel", "n_features", "program"):
        changed = json.loads(json.dumps(spec))
        del changed["runtime"][part]
        with pytest.raises(SavedRuntimeError):
            load_saved(_repack(arrays, changed))
    extra = json.loads(json.dumps(spec))
    extra["runtime"]["surprise"] = {"i": 1}
    with pytest.raises(SavedRuntimeError):
        load_saved(_repack(arrays, extra))
