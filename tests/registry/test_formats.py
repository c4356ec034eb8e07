"""What can be registered: skops, ONNX, pickles (opt-in only), reference formats, trust."""

from __future__ import annotations

import pickle
from pathlib import Path

import joblib
import numpy as np
import polars as pl
import pytest
import skops.io as sio
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from registry import (
    InvalidReference,
    PickleRefused,
    Registry,
    UnsupportedArtifact,
    UntrustedTypes,
)
from registry.trust import is_trusted

rng = np.random.default_rng(2)
X = rng.normal(size=(30, 3))
y = (X[:, 0] > 0).astype(int)


class Doubler(RegressorMixin, BaseEstimator):
    """A class skops does not know: must never be loaded from a registry."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> Doubler:
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return 2 * np.asarray(X)[:, 0]


@pytest.fixture
def reg(local_registry_url: str) -> Registry:
    return Registry(local_registry_url)


def test_skops_file_with_trees_registers_and_loads(reg: Registry, tmp_path: Path) -> None:
    model = RandomForestClassifier(n_estimators=3, max_depth=2, random_state=0).fit(X, y)
    path = tmp_path / "forest.skops"
    sio.dump(model, path)
    mv = reg.register("forest", path)
    assert mv.input_schema.names == ["x0", "x1", "x2"] and mv.output_schema.classes == [0, 1]
    assert reg.artifact_bytes(mv) == path.read_bytes()
    np.testing.assert_array_equal(reg.load_model(mv).predict_proba(X), model.predict_proba(X))  # type: ignore[attr-defined]


@pytest.mark.parametrize("suffix", [".pkl", ".joblib"])
def test_pickles_are_refused_without_trust(reg: Registry, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"model{suffix}"
    joblib.dump(LogisticRegression().fit(X, y), path)
    with pytest.raises(PickleRefused, match="--trust-pickle") as info:
        reg.register("m", path)
    assert "\n" not in str(info.value)
    assert reg.list() == []


def test_trusted_pickle_is_converted_to_skops(reg: Registry, tmp_path: Path) -> None:
    model = LogisticRegression().fit(X, y)
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    mv = reg.register("m", path, trust_pickle=True)
    assert (mv.flavor, mv.artifact) == ("sklearn", "model.skops")
    assert reg.artifact_bytes(mv)[:2] == b"PK"  # a skops zip, not a pickle
    np.testing.assert_array_equal(reg.load_model(mv).predict(X), model.predict(X))  # type: ignore[attr-defined]


def test_untrusted_types_are_named(reg: Registry, tmp_path: Path) -> None:
    model = Doubler().fit(X, y)
    with pytest.raises(UntrustedTypes, match=r"test_formats\.Doubler"):
        reg.register("m", model)
    path = tmp_path / "doubler.skops"
    sio.dump(model, path)
    with pytest.raises(UntrustedTypes, match=r"test_formats\.Doubler"):
        reg.register("m", path)
    pkl = tmp_path / "doubler.pkl"
    pkl.write_bytes(pickle.dumps(model))
    with pytest.raises(UntrustedTypes):
        reg.register("m", pkl, trust_pickle=True)
    assert reg.list() == []


@pytest.mark.parametrize(
    ("name", "trusted"),
    [
        ("sklearn.tree._tree.Tree", True),
        ("numpy.float64", True),
        ("scipy.sparse._csr.csr_matrix", True),
        ("builtins.dict", True),
        ("numpy.load", False),
        ("numpy.lib._npyio_impl.load", False),
        ("numpy.genfromtxt", False),
        ("numpy.fromregex", False),
        ("sklearn.datasets.dump_svmlight_file", False),
        ("sklearn.datasets._svmlight_format_io.dump_svmlight_file", False),
        ("numpy.lib.npyio.NpzFile", False),
        ("builtins.eval", False),
        ("os.system", False),
        ("xgboost.XGBClassifier", False),
    ],
)
def test_trust_policy(name: str, trusted: bool) -> None:
    assert is_trusted(name) is trusted


def test_not_a_model(reg: Registry, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(UnsupportedArtifact, match="not a model file"):
        reg.register("m", text)
    fake = tmp_path / "fake.skops"
    fake.write_text("not a zip")
    with pytest.raises(UnsupportedArtifact, match="not a readable skops file"):
        reg.register("m", fake)
    fake_onnx = tmp_path / "fake.onnx"
    fake_onnx.write_bytes(b"\x00\x01garbage")
    with pytest.raises(UnsupportedArtifact, match="not an ONNX model"):
        reg.register("m", fake_onnx)
    with pytest.raises(UnsupportedArtifact, match="no such model file"):
        reg.register("m", tmp_path / "missing.skops")
    with pytest.raises(UnsupportedArtifact, match="not fitted"):
        reg.register("m", LogisticRegression())
    with pytest.raises(UnsupportedArtifact, match="got StandardScaler"):
        reg.register("m", StandardScaler().fit(X))
    with pytest.raises(UnsupportedArtifact, match="expected a classifier or a regressor"):
        reg.register("m", KMeans(n_clusters=2, n_init=1, random_state=0).fit(X))
    with pytest.raises(UnsupportedArtifact, match="not a model"):
        reg.register("m", {"weights": [1, 2]})
    assert reg.list() == []


def test_categorical_reference_gives_categories(reg: Registry) -> None:
    frame = pl.DataFrame({"plan": ["basic", "pro", "basic", "max"] * 5, "usage": np.arange(20.0)})
    target = np.array([0, 1] * 10)
    model = make_pipeline(
        ColumnTransformer([("plan", OneHotEncoder(), ["plan"])], remainder="passthrough"),
        LogisticRegression(),
    ).fit(frame, target)
    mv = reg.register("plans", model, reference=frame)
    plan, usage = mv.input_schema.features
    assert (plan.name, plan.dtype, plan.categories) == ("plan", "object", ["basic", "max", "pro"])
    assert (usage.dtype, usage.categories) == ("float64", None)
    np.testing.assert_array_equal(reg.load_model(mv).predict(frame), model.predict(frame))  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_reference_files(reg: Registry, tmp_path: Path, kind: str) -> None:
    frame = pl.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2]})
    model = LogisticRegression().fit(frame, y)
    path = tmp_path / f"ref.{kind}"
    getattr(frame, f"write_{kind}")(path)
    mv = reg.register("m", model, reference=path)
    stored = reg.load_reference(mv)
    assert stored is not None and stored.columns == ["a", "b", "c"] and stored.height == 30


def test_bad_references(reg: Registry, tmp_path: Path) -> None:
    frame = pl.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2]})
    model = LogisticRegression().fit(frame, y)
    with pytest.raises(InvalidReference, match=r"lacks the model's feature column\(s\) \['c'\]"):
        reg.register("m", model, reference=frame.drop("c"))
    with pytest.raises(InvalidReference, match="no such file"):
        reg.register("m", model, reference=tmp_path / "nope.csv")
    (tmp_path / "ref.json").write_text("{}")
    with pytest.raises(InvalidReference, match=r"expected a \.csv or \.parquet"):
        reg.register("m", model, reference=tmp_path / "ref.json")
    with pytest.raises(InvalidReference, match="no rows"):
        reg.register("m", model, reference=frame.head(0))
    with pytest.raises(InvalidReference, match="2-D numeric array"):
        reg.register("m", model, reference=np.array(["a", "b"]))
    assert reg.list() == []


def test_pipeline_params_are_json_safe(reg: Registry) -> None:
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    mv = reg.register("pipe", model)
    assert mv.lineage.params["steps"] == [
        ["standardscaler", "StandardScaler"],
        ["logisticregression", "LogisticRegression"],
    ]


def test_sklearn_estimator_exported_as_onnx(reg: Registry) -> None:
    import onnxruntime as ort

    model = LogisticRegression().fit(X, y)
    mv = reg.register("m", model, flavor="onnx")
    assert (mv.flavor, mv.artifact, mv.output_schema.classes) == ("onnx", "model.onnx", [0, 1])
    session = ort.InferenceSession(reg.load_model(mv), providers=["CPUExecutionProvider"])  # type: ignore[arg-type]
    outputs = session.run(None, {session.get_inputs()[0].name: X.astype(np.float32)})
    np.testing.assert_array_equal(np.asarray(outputs[0]).ravel(), model.predict(X))


def test_a_reference_with_numbers_stored_as_strings_is_refused(reg: Registry) -> None:
    """A numeric column read as strings would become a categorical input with one category
    per distinct number, and every real request would then fail: refuse it at registration."""
    rng = np.random.default_rng(0)
    frame = pl.DataFrame({"age": rng.normal(40, 9, 200), "tenure": rng.normal(5, 2, 200)})
    model = LogisticRegression().fit(frame, (frame["age"] > 40).cast(pl.Int8))
    bad = frame.with_columns(pl.col("tenure").round(2).cast(pl.String))
    with pytest.raises(InvalidReference, match=r"'tenure': numbers stored as strings"):
        reg.register("m", model, reference=bad)
    assert reg.list() == []
    assert reg.register("m", model, reference=frame).input_schema.features[1].categories is None
