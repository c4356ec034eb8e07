"""The registry contract, run on every backend (local directory and S3 via moto server)."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from registry import (
    ArtifactCorrupt,
    Canary,
    InvalidName,
    InvalidReference,
    InvalidRoute,
    ModelNotFound,
    ModelVersion,
    Registry,
    Route,
    Shadow,
    VersionNotFound,
)
from registry.reference import fingerprint


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    rng = np.random.default_rng(1)
    return pl.DataFrame({"age": rng.normal(40, 10, 60), "income": rng.normal(3, 1, 60)})


@pytest.fixture(scope="module")
def classifier(frame: pl.DataFrame) -> LogisticRegression:
    y = np.where(frame["age"].to_numpy() > 40, "yes", "no")
    return LogisticRegression().fit(frame, y)


@pytest.fixture
def reg(registry_url: str) -> Registry:
    return Registry(registry_url)


def test_register_then_get_list_versions(
    reg: Registry, classifier: LogisticRegression, frame: pl.DataFrame
) -> None:
    mv = reg.register("churn", classifier, reference=frame, tags={"team": "risk"})
    assert (mv.name, mv.version, mv.flavor, mv.artifact) == ("churn", 1, "sklearn", "model.skops")
    assert mv.input_schema.names == ["age", "income"]
    assert [f.dtype for f in mv.input_schema.features] == ["float64", "float64"]
    assert mv.output_schema.task == "classification"
    assert mv.output_schema.classes == ["no", "yes"]
    assert mv.tags == {"team": "risk"}
    assert mv.lineage.rows == 60 and mv.lineage.data_fingerprint == fingerprint(frame)
    assert mv.lineage.params["C"] == 1.0 and mv.lineage.trigger == "manual"
    assert mv.lineage.code_version is not None and mv.lineage.code_version.startswith("mlgate ")
    assert mv.created_at.endswith("Z")
    assert reg.get("churn", 1) == mv == reg.get("churn", "1") == reg.get("churn")
    assert reg.list() == ["churn"]
    assert reg.versions("churn") == [mv]
    assert reg.route("churn").champion == 1 and reg.route("churn").generation == 1


def test_loaded_model_predicts_like_the_original(
    reg: Registry, classifier: LogisticRegression, frame: pl.DataFrame
) -> None:
    mv = reg.register("churn", classifier, reference=frame)
    loaded = reg.load_model(mv)
    np.testing.assert_array_equal(loaded.predict_proba(frame), classifier.predict_proba(frame))  # type: ignore[attr-defined]
    ref = reg.load_reference(mv)
    assert ref is not None and ref.equals(frame)


def test_manifest_file_is_the_design_layout(reg: Registry, classifier: LogisticRegression) -> None:
    reg.register("churn", classifier, reference=np.ones((3, 2)))
    raw = json.loads(reg.store.read("models/churn/versions/1/manifest.json"))
    assert {"name", "version", "flavor", "sha256", "input_schema", "output_schema", "lineage",
            "created_at", "tags"} <= raw.keys()  # fmt: skip
    assert reg.store.exists("models/churn/versions/1/model.skops")
    assert reg.store.exists("models/churn/versions/1/reference.parquet")
    assert reg.store.exists("models/churn/route.json")
    assert reg.store.exists("models/churn/events.jsonl")


def test_later_versions_take_no_traffic_until_promoted(
    reg: Registry, classifier: LogisticRegression
) -> None:
    for _ in range(3):
        reg.register("m", classifier)
    assert reg.route("m").champion == 1
    assert reg.get("m", "latest").version == 3
    mv = reg.register("m", classifier, promote=True)
    route = reg.route("m")
    assert (route.champion, route.previous_champion, mv.version) == (4, 1, 4)
    assert reg.get("m", "champion").version == 4
    assert [e.kind for e in reg.events("m")][-2:] == ["register", "promote"]


def test_aliases_and_missing_versions(reg: Registry, classifier: LogisticRegression) -> None:
    with pytest.raises(ModelNotFound, match="'ghost' is not registered"):
        reg.get("ghost")
    with pytest.raises(ModelNotFound):
        reg.versions("ghost")
    reg.register("m", classifier)
    with pytest.raises(VersionNotFound, match="no version 9"):
        reg.get("m", 9)
    with pytest.raises(VersionNotFound, match="has no canary"):
        reg.get("m", "canary")
    with pytest.raises(VersionNotFound, match="champion, canary, latest"):
        reg.get("m", "newest")
    assert reg.route("ghost") == Route() and reg.route_stamp("ghost") is None


def test_update_route_is_validated_and_audited(
    reg: Registry, classifier: LogisticRegression
) -> None:
    reg.register("m", classifier)
    reg.register("m", classifier)
    stamp = reg.route_stamp("m")
    route = reg.update_route(
        "m",
        lambda r: msgspec.structs.replace(r, canary=Canary(2, 10.0), shadows=[Shadow(2, 50.0)]),
        kind="canary", detail={"version": 2}, actor="alice",
    )  # fmt: skip
    assert route.generation == 2 and route.canary == Canary(2, 10.0)
    assert reg.route("m") == route and reg.get("m", "canary").version == 2
    assert reg.route_stamp("m") not in (None, stamp)
    last = reg.events("m")[-1]
    assert (last.kind, last.version, last.generation, last.actor) == ("canary", 2, 2, "alice")
    for bad, message in [
        (lambda r: msgspec.structs.replace(r, canary=Canary(7, 10.0)), "no version 7"),
        (lambda r: msgspec.structs.replace(r, canary=Canary(2, 101.0)), "within 0-100"),
        (lambda r: msgspec.structs.replace(r, canary=Canary(1, 5.0)), "already the champion"),
    ]:
        with pytest.raises(InvalidRoute, match=message):
            reg.update_route("m", bad, kind="canary")
    assert reg.route("m") == route  # refused changes leave no trace
    unchanged = reg.update_route("m", lambda r: r, kind="noop")
    assert unchanged.generation == 2 and reg.events("m")[-1].kind == "canary"
    with pytest.raises(ModelNotFound):
        reg.update_route("ghost", lambda r: msgspec.structs.replace(r, champion=1), kind="x")


def test_tampered_artifact_is_never_loaded(reg: Registry, classifier: LogisticRegression) -> None:
    mv = reg.register("m", classifier, reference=np.ones((2, 2)))
    reg.store.write("models/m/versions/1/model.skops", b"evil bytes")
    with pytest.raises(ArtifactCorrupt) as info:
        reg.load_model(mv)
    assert info.value.expected == mv.sha256 and info.value.actual != mv.sha256
    assert "model.skops" in str(info.value) and mv.sha256 in str(info.value)
    reg.store.write("models/m/versions/1/reference.parquet", b"PAR1")
    with pytest.raises(ArtifactCorrupt, match="reference.parquet"):
        reg.load_reference(mv)


@pytest.mark.parametrize("name", ["../x", "A", "x/y", "", "a" * 65, "-x", "x y"])
def test_bad_names_are_refused(reg: Registry, classifier: LogisticRegression, name: str) -> None:
    with pytest.raises(InvalidName, match=r"\^\[a-z0-9\]\[a-z0-9\._-\]\{0,63\}\$"):
        reg.register(name, classifier)
    assert reg.list() == []


def test_longest_name_is_accepted(reg: Registry, classifier: LogisticRegression) -> None:
    name = "a" * 64
    assert reg.register(name, classifier).name == name and reg.list() == [name]


def test_onnx_file_is_stored_as_is(reg: Registry, tmp_path: Path) -> None:
    from tests.registry.onnx_models import linear_regressor

    path = tmp_path / "lin.onnx"
    path.write_bytes(linear_regressor(4).SerializeToString())
    mv = reg.register("lin", path)
    assert (mv.flavor, mv.artifact, mv.output_schema.task) == ("onnx", "model.onnx", "regression")
    assert mv.input_schema.names == ["x0", "x1", "x2", "x3"]
    assert {f.dtype for f in mv.input_schema.features} == {"float32"}
    assert reg.load_model(mv) == path.read_bytes()
    named = reg.register(
        "lin", path, reference=pl.DataFrame({n: [1.0, 2.0] for n in "abcd"}), flavor="onnx"
    )
    assert named.input_schema.names == ["a", "b", "c", "d"]


def test_regressor_and_reference_columns(reg: Registry) -> None:
    X = np.arange(20.0).reshape(10, 2)
    model = LinearRegression().fit(X, X.sum(axis=1))
    ref = pl.DataFrame({"u": X[:, 0], "v": X[:, 1], "label": X.sum(axis=1)})
    mv = reg.register("reg", model, reference=ref, metrics={"rmse": 0.5}, parent_version=None)
    assert mv.input_schema.names == ["u", "v"] and mv.output_schema.task == "regression"
    assert mv.lineage.metrics == {"rmse": 0.5}
    stored = reg.load_reference(mv)
    assert stored is not None and stored.columns == ["u", "v", "label"]
    with pytest.raises(InvalidReference, match="model has 2 features, the array has 3"):
        reg.register("reg", model, reference=np.ones((4, 3)))


def test_versions_only_lists_committed(reg: Registry, classifier: LogisticRegression) -> None:
    reg.register("m", classifier)
    reg.store.create("models/m/versions/2/.claim", b"{}")  # a writer that died early
    reg.store.write("models/m/versions/2/model.skops", b"partial")
    assert [mv.version for mv in reg.versions("m")] == [1]
    assert reg.register("m", classifier).version == 3


def test_from_env_prefers_registry_then_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, registry_url: str
) -> None:
    monkeypatch.setenv("MLGATE_REGISTRY", registry_url)
    assert Registry.from_env().url == registry_url
    monkeypatch.delenv("MLGATE_REGISTRY")
    monkeypatch.setenv("MLGATE_HOME", str(tmp_path / "home"))
    assert Registry.from_env().url == f"file://{tmp_path}/home/registry"


def test_manifest_roundtrips_through_msgspec(reg: Registry, classifier: LogisticRegression) -> None:
    mv = reg.register("m", classifier)
    assert msgspec.json.decode(msgspec.json.encode(mv), type=ModelVersion) == mv


def test_recorded_events_join_the_audit_trail(
    reg: Registry, classifier: LogisticRegression
) -> None:
    reg.register("m", classifier)
    event = reg.record_event(
        "m", "model.drift.detected", version=1, detail={"alert_id": "a1"}, actor="monitor"
    )
    last = reg.events("m")[-1]
    assert last == event
    assert (last.kind, last.version, last.detail, last.actor) == (
        "model.drift.detected", 1, {"alert_id": "a1"}, "monitor",
    )  # fmt: skip
    with pytest.raises(InvalidName):
        reg.record_event("../x", "model.drift.detected")
