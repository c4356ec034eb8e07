"""Classifiers without ``predict_proba`` (LinearSVC, RidgeClassifier …) are served with labels
only: over a real socket, with a real registry and real Parquet logs."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import msgspec
import numpy as np
import pytest
from sklearn.linear_model import RidgeClassifier, SGDClassifier
from sklearn.svm import LinearSVC

from gateway.rollout_status import rollout_stats
from gateway.settings import GatewaySettings
from registry import Registry
from registry.model import Shadow
from tests.gateway.conftest import Served, fit_iris, iris, serve
from tests.gateway.test_http_v1_mlflow import read_log, wait_rows


@functools.lru_cache(maxsize=1)
def fit_svc() -> LinearSVC:
    X, y = iris()
    return LinearSVC(max_iter=10_000).fit(X, y)


@functools.lru_cache(maxsize=1)
def fit_ridge() -> RidgeClassifier:
    X, y = iris()
    return RidgeClassifier().fit(X, y)


@functools.lru_cache(maxsize=1)
def fit_sgd_hinge() -> SGDClassifier:
    X, y = iris()
    return SGDClassifier(loss="hinge", random_state=0).fit(X, y)


@pytest.fixture(scope="module")
def svc_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``svc``: a LinearSVC champion (sklearn backend); ``sgd``: hinge-loss SGD (numba backend);
    ``mixed``: LogisticRegression champion, RidgeClassifier shadow."""
    root = tmp_path_factory.mktemp("no-proba")
    registry = Registry("file://" + str(root / "registry"))
    registry.register("svc", fit_svc())
    registry.register("sgd", fit_sgd_hinge())
    registry.register("mixed", fit_iris())
    registry.register("mixed", fit_ridge())
    registry.update_route(
        "mixed", lambda r: msgspec.structs.replace(r, shadows=[Shadow(2)]), kind="shadow"
    )
    settings = GatewaySettings(poll_interval_s=0.05, log_flush_interval_s=0.2, admin_token="secret")
    with serve(registry, root / "logs", settings) as served:
        yield served


def _infer_body(X: np.ndarray, **extra: object) -> dict[str, object]:
    tensor = {"name": "input-0", "shape": list(X.shape), "datatype": "FP32", "data": X.tolist()}
    return {"inputs": [tensor], **extra}


def test_oip_infer_gives_labels_matching_sklearn_and_metadata_lists_predict_only(
    svc_served: Served,
) -> None:
    assert svc_served.loaded("svc", 1)["backend"] == "sklearn"
    X, _ = iris()
    X = X[::10]
    with svc_served.client() as c:
        meta = c.get("/v2/models/svc").json()
        assert meta["outputs"] == [{"name": "predict", "datatype": "BYTES", "shape": [-1]}]
        assert meta["parameters"]["classes"] == ["setosa", "versicolor", "virginica"]
        r = c.post("/v2/models/svc/infer", json=_infer_body(X, id="svc-1"))
        assert r.status_code == 200, r.text
        outputs = r.json()["outputs"]
        assert [o["name"] for o in outputs] == ["predict"]
        assert outputs[0]["data"] == fit_svc().predict(X).tolist()
        bad = c.post(
            "/v2/models/svc/infer", json=_infer_body(X, outputs=[{"name": "predict_proba"}])
        )
        assert bad.status_code == 400
        assert "unknown output 'predict_proba'" in bad.json()["error"]
        assert "['predict']" in bad.json()["error"]


def test_hinge_sgd_on_the_numba_backend_serves_labels_only(svc_served: Served) -> None:
    assert svc_served.loaded("sgd", 1)["backend"] == "numba"
    X, _ = iris()
    with svc_served.client() as c:
        meta = c.get("/v2/models/sgd").json()
        assert [o["name"] for o in meta["outputs"]] == ["predict"]
        r = c.post("/v2/models/sgd/infer", json=_infer_body(X))
        assert r.status_code == 200, r.text
        assert r.json()["outputs"][0]["data"] == fit_sgd_hinge().predict(X).tolist()


def test_v1_and_mlflow_answer_labels(svc_served: Served) -> None:
    X, _ = iris()
    X = X[:3]
    expected = fit_svc().predict(X).tolist()
    with svc_served.client() as c:
        v1 = c.post("/v1/models/svc:predict", json={"instances": X.tolist()})
        assert v1.status_code == 200, v1.text
        assert v1.json() == {"predictions": expected}
        mlflow = c.post("/invocations?model=svc", json={"inputs": X.tolist()})
        assert mlflow.status_code == 200, mlflow.text
        assert mlflow.json() == {"predictions": expected}


def test_log_rows_have_prediction_and_no_proba_columns(svc_served: Served) -> None:
    X, _ = iris()
    X = X[48:52]
    with svc_served.client() as c:
        r = c.post("/v2/models/svc/infer", json=_infer_body(X, id="svc-log"))
        assert r.status_code == 200, r.text
    rows = wait_rows(svc_served, "predictions", "svc", "svc-log")
    assert rows.columns == [
        "ts", "request_id", "model", "version", "route", "in_x0", "in_x1", "in_x2", "in_x3",
        "prediction", "latency_us", "batch_rows", "status",
    ]  # fmt: skip
    assert rows["prediction"].to_list() == fit_svc().predict(X).tolist()
    assert rows["status"].to_list() == [200] * 4


def test_shadow_without_proba_is_logged_and_compared(svc_served: Served) -> None:
    X, _ = iris()
    with svc_served.client() as c:
        for i in range(0, 150, 15):
            r = c.post("/v1/models/mixed:predict", json={"instances": X[i : i + 1].tolist()},
                       headers={"X-Request-Id": f"mix-{i}"})  # fmt: skip
            assert r.status_code == 200, r.text
            assert r.json()["predictions"] == fit_iris().predict(X[i : i + 1]).tolist()

    def shadow_rows() -> int:
        frame = read_log(svc_served.logs, "predictions", "mixed")
        if frame.is_empty():
            return 0
        return frame.filter(frame["route"] == "shadow").height

    svc_served.wait_for(lambda: shadow_rows() == 10)
    frame = read_log(svc_served.logs, "predictions", "mixed")
    shadow = frame.filter(frame["route"] == "shadow").sort("request_id")
    assert shadow["version"].to_list() == [2] * 10
    assert shadow["proba_setosa"].null_count() == 10  # the Ridge shadow gives no probabilities
    ids = [int(rid.removeprefix("mix-")) for rid in shadow["request_id"].to_list()]
    assert shadow["prediction"].to_list() == fit_ridge().predict(X[ids]).tolist()
    route = svc_served.registry.route("mixed")
    stats = rollout_stats(str(svc_served.logs), "mixed", route=route)
    by_route = {(s.route, s.version): s for s in stats.routes}
    agree = np.mean(fit_iris().predict(X[ids]) == fit_ridge().predict(X[ids]))
    assert by_route[("shadow", 2)].compared == 10
    assert by_route[("shadow", 2)].agreement == pytest.approx(agree)


def test_a_classifier_with_probabilities_still_lists_predict_proba(svc_served: Served) -> None:
    with svc_served.client() as c:
        meta = c.get("/v2/models/mixed").json()
    assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba"]
