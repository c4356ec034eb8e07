"""The model's outputs on its reference, stored at registration (for the monitor)."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import msgspec
import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.svm import LinearSVC

from registry import ArtifactCorrupt, ModelVersion, Registry


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    rng = np.random.default_rng(3)
    return pl.DataFrame({"age": rng.normal(40, 10, 300), "income": rng.normal(3, 1, 300)})


def _x(frame: pl.DataFrame) -> np.ndarray:
    return frame.to_numpy().astype(np.float32)  # what the gateway hands the model


def _stored(reg: Registry, mv: ModelVersion) -> pl.DataFrame:
    out = reg.load_reference_predictions(mv)
    assert out is not None
    arrow = reg.load_reference_predictions_arrow(mv)  # the monitor's reader: the same data
    assert arrow is not None and pl.from_arrow(arrow).equals(out)
    return out


def test_classifier_with_string_labels_and_probabilities(
    registry_url: str, frame: pl.DataFrame
) -> None:
    reg = Registry(registry_url)
    y = np.where(frame["age"].to_numpy() + frame["income"].to_numpy() > 43, "yes", "no")
    est = LogisticRegression().fit(_x(frame), y)
    mv = reg.register("churn", est, reference=frame)
    got = _stored(reg, mv)
    assert got.columns == ["prediction", "proba_no", "proba_yes"]
    assert got.schema["prediction"] == pl.String
    assert got["prediction"].to_list() == [str(v) for v in est.predict(_x(frame))]
    np.testing.assert_array_equal(got.select("proba_no", "proba_yes").to_numpy(),
                                  est.predict_proba(_x(frame)))  # fmt: skip
    assert set(got["prediction"].unique()) == {"no", "yes"}
    data = reg.store.read("models/churn/versions/1/reference_predictions.parquet")
    assert mv.reference_predictions == "reference_predictions.parquet"
    assert mv.reference_predictions_sha256 == hashlib.sha256(data).hexdigest()
    raw = json.loads(reg.store.read("models/churn/versions/1/manifest.json"))
    assert raw["reference_predictions_sha256"] == mv.reference_predictions_sha256
    assert reg.get("churn", 1) == mv


def test_classifier_without_predict_proba_has_labels_only(
    frame: pl.DataFrame, tmp_path: Path
) -> None:
    reg = Registry(str(tmp_path / "reg"))
    y = (frame["age"].to_numpy() > 40).astype(int)
    est = LinearSVC().fit(_x(frame), y)
    assert not hasattr(est, "predict_proba")
    mv = reg.register("svm", est, reference=frame)
    got = _stored(reg, mv)
    assert got.columns == ["prediction"]
    assert got["prediction"].to_list() == [str(v) for v in est.predict(_x(frame))]
    assert set(got["prediction"].to_list()) == {"0", "1"}  # the log renders labels with str()


def test_regressor_predictions_are_float64(frame: pl.DataFrame, tmp_path: Path) -> None:
    reg = Registry(str(tmp_path / "reg"))
    target = 2.0 * frame["age"].to_numpy() - frame["income"].to_numpy()
    est = LinearRegression().fit(_x(frame), target)
    ref = frame.with_columns(pl.Series("label", target))  # extra columns are not inputs
    mv = reg.register("price", est, reference=ref)
    got = _stored(reg, mv)
    assert got.schema == pl.Schema({"prediction": pl.Float64})
    np.testing.assert_array_equal(got["prediction"].to_numpy(), est.predict(_x(frame)))


def test_corrupted_predictions_are_refused(registry_url: str, frame: pl.DataFrame) -> None:
    reg = Registry(registry_url)
    est = LinearRegression().fit(_x(frame), frame["age"].to_numpy())
    mv = reg.register("m", est, reference=frame)
    key = "models/m/versions/1/reference_predictions.parquet"
    good = reg.store.read(key)
    reg.store.write(key, good[:-9] + b"\x00" * 9)
    with pytest.raises(ArtifactCorrupt, match="reference_predictions.parquet: sha256 mismatch"):
        reg.load_reference_predictions(mv)
    with pytest.raises(ArtifactCorrupt, match="reference_predictions.parquet: sha256 mismatch"):
        reg.load_reference_predictions_arrow(mv)


def test_manifest_without_the_field_still_loads(frame: pl.DataFrame, tmp_path: Path) -> None:
    reg = Registry(str(tmp_path / "reg"))
    est = LinearRegression().fit(_x(frame), frame["age"].to_numpy())
    reg.register("old", est, reference=frame)
    key = "models/old/versions/1/manifest.json"
    raw = json.loads(reg.store.read(key))
    del raw["reference_predictions"], raw["reference_predictions_sha256"]
    reg.store.write(key, json.dumps(raw).encode())  # a manifest written before the field
    mv = reg.get("old", 1)
    assert mv.reference_predictions is None and mv.reference_predictions_sha256 is None
    assert reg.load_reference_predictions(mv) is None
    assert reg.load_reference_predictions_arrow(mv) is None
    assert reg.load_reference(mv) is not None
    assert msgspec.json.decode(msgspec.json.encode(mv), type=ModelVersion) == mv


def test_none_without_reference_or_for_onnx(frame: pl.DataFrame, tmp_path: Path) -> None:
    from tests.registry.onnx_models import linear_regressor

    reg = Registry(str(tmp_path / "reg"))
    est = LinearRegression().fit(_x(frame), frame["age"].to_numpy())
    mv = reg.register("noref", est)
    assert mv.reference_predictions is None and reg.load_reference_predictions(mv) is None
    path = tmp_path / "lin.onnx"
    path.write_bytes(linear_regressor(2).SerializeToString())
    onnx_mv = reg.register("lin", path, reference=frame)
    assert onnx_mv.reference is not None and onnx_mv.reference_predictions is None
    assert not reg.store.exists("models/lin/versions/1/reference_predictions.parquet")


def test_a_model_that_cannot_score_its_reference_is_still_registered(
    frame: pl.DataFrame, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reg = Registry(str(tmp_path / "reg"))
    est = LinearRegression().fit(_x(frame), frame["age"].to_numpy())
    with_nan = frame.with_columns(pl.Series("age", [np.nan] * frame.height))
    mv = reg.register("nan", est, reference=with_nan)  # LinearRegression refuses NaN
    assert mv.reference is not None and mv.reference_predictions is None
    assert "cannot score its reference data" in caplog.text and "'nan'" in caplog.text


def test_predictions_are_stored_before_the_manifest(frame: pl.DataFrame, tmp_path: Path) -> None:
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:  # the writer pauses at its commit point until the test has looked
        held.set()
        release.wait(30)

    reg = Registry(str(tmp_path / "reg"), before_commit=hold)
    est = LinearRegression().fit(_x(frame), frame["age"].to_numpy())
    done: list[ModelVersion] = []
    writer = threading.Thread(target=lambda: done.append(reg.register("m", est, reference=frame)))
    writer.start()
    try:
        assert held.wait(30), "the writer never reached its commit point"
        assert reg.store.exists("models/m/versions/1/reference_predictions.parquet")
        assert not reg.store.exists("models/m/versions/1/manifest.json")
    finally:
        release.set()
        writer.join(30)
    assert done and done[0].reference_predictions is not None


@pytest.mark.parametrize("zipmap", [False, True])
def test_onnx_models_score_through_the_same_function(frame: pl.DataFrame, zipmap: bool) -> None:
    """An ONNX artifact (what the monitor loads for a version without stored outputs) gives
    the labels and probabilities of the estimator it was exported from, tensor or ZipMap."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    from registry.model import OutputSchema
    from registry.predictions import OnnxEstimator, score

    y = (frame["age"] > 40).cast(pl.Int64).to_numpy()
    est = LogisticRegression().fit(_x(frame), y)
    onnx = convert_sklearn(
        est,
        initial_types=[("X", FloatTensorType([None, 2]))],
        options={id(est): {"zipmap": zipmap}},
    ).SerializeToString()
    output = OutputSchema("classification", classes=[0, 1])
    names = ["age", "income"]
    ours = score(OnnxEstimator(onnx), frame, names, output)
    theirs = score(est, frame, names, output)
    assert ours["prediction"].to_list() == theirs["prediction"].to_list()
    np.testing.assert_allclose(
        ours["proba_1"].to_numpy(), theirs["proba_1"].to_numpy(), rtol=1e-5, atol=1e-6
    )
