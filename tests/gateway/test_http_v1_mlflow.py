"""KServe V1, MLflow, feedback, metrics, admin and the prediction log, over a real socket."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from registry.logschema import FEEDBACK_COLUMNS
from tests.gateway.conftest import Served, fit_diabetes

ROW = [5.1, 3.5, 1.4, 0.2]
RECORD = {"x0": 5.1, "x1": 3.5, "x2": 1.4, "x3": 0.2}


def read_log(logs: Path, kind: str, model: str) -> pl.DataFrame:
    files = sorted((logs / kind / f"model={model}").glob("date=*/*.parquet"))
    if not files:
        return pl.DataFrame()
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")


def wait_rows(served: Served, kind: str, model: str, request_id: str) -> pl.DataFrame:
    """Rows of request ``request_id``: row i of a multi-row request is ``<id>/<i>``."""

    def rows() -> pl.DataFrame:
        frame = read_log(served.logs, kind, model)
        if frame.is_empty():
            return frame
        ids = pl.col("request_id")
        return frame.filter((ids == request_id) | ids.str.starts_with(request_id + "/"))

    served.wait_for(lambda: not rows().is_empty())
    return rows()


@pytest.mark.parametrize(
    "body",
    [
        {"instances": [ROW, ROW]},
        {"instances": [RECORD, RECORD]},
        {"inputs": {k: [v, v] for k, v in RECORD.items()}},
    ],
)
def test_kserve_v1_predict(shared: Served, body: dict[str, object]) -> None:
    with shared.client() as c:
        r = c.post("/v1/models/iris:predict", json=body)
        assert r.status_code == 200, r.text
        key = "outputs" if "inputs" in body else "predictions"
        assert r.json() == {key: ["setosa", "setosa"]}
        assert r.headers["x-model-version"] == "1"
        assert c.post("/v1/models/iris/versions/1:predict", json=body).status_code == 200
        assert c.get("/v1/models/iris").json() == {"name": "iris", "ready": True}
        explain = c.post("/v1/models/iris:explain", json=body)  # no explainer: an honest 501
        assert explain.status_code == 501 and ":predict" in explain.json()["error"]
        bad = c.post("/v1/models/iris:classify", json=body)
        assert bad.status_code == 400 and ":predict" in bad.json()["error"]


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"dataframe_split": {"columns": ["x0","x1","x2","x3"], "data": [[5.1,3.5,1.4,0.2]]}}',
         "application/json"),
        (b'{"dataframe_records": [{"x0": 5.1, "x1": 3.5, "x2": 1.4, "x3": 0.2}]}',
         "application/json"),
        (b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}', "application/json"),
        (b'{"inputs": [[5.1, 3.5, 1.4, 0.2]]}', "application/json"),
        (b"x0,x1,x2,x3\n5.1,3.5,1.4,0.2\n", "text/csv"),
    ],
)  # fmt: skip
def test_mlflow_invocations(shared: Served, content: bytes, content_type: str) -> None:
    with shared.client() as c:
        r = c.post("/invocations?model=iris", content=content,
                   headers={"Content-Type": content_type})  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json() == {"predictions": ["setosa"]}
        # two models are served and no default_model is set: the model must be named
        r = c.post("/invocations", content=content, headers={"Content-Type": content_type})
        assert r.status_code == 404 and "?model=" in r.json()["message"]  # MLflow's shape
        assert r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_regressor_values_match_sklearn(shared: Served) -> None:
    X = np.linspace(-0.05, 0.05, 20, dtype=np.float32).reshape(2, 10)
    with shared.client() as c:
        r = c.post("/v1/models/diabetes:predict", json={"instances": X.tolist()})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], fit_diabetes().predict(X), rtol=1e-5)


def test_prediction_log_has_exactly_the_logschema_columns(shared: Served) -> None:
    with shared.client() as c:
        r = c.post(
            "/v2/models/iris/infer",
            json={"id": "log-me", "inputs": [
                {"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": [ROW, ROW]}]},
        )  # fmt: skip
        assert r.status_code == 200
        bad = c.post("/v1/models/iris:predict", json={"instances": [[1, 2]]},
                     headers={"X-Request-Id": "bad-one"})  # fmt: skip
        assert bad.status_code == 400
    rows = wait_rows(shared, "predictions", "iris", "log-me")
    assert rows.columns == [
        "ts", "request_id", "model", "version", "route", "in_x0", "in_x1", "in_x2", "in_x3",
        "prediction", "proba_setosa", "proba_versicolor", "proba_virginica",
        "latency_us", "batch_rows", "status",
    ]  # fmt: skip
    assert str(rows.schema["ts"]) == "Datetime(time_unit='us', time_zone='UTC')"
    assert rows.height == 2
    assert rows["request_id"].to_list() == ["log-me/0", "log-me/1"]
    assert rows["prediction"].to_list() == ["setosa", "setosa"]
    assert rows["route"].to_list() == ["champion", "champion"]
    assert rows["status"].to_list() == [200, 200]
    assert rows["in_x0"].to_list() == pytest.approx([5.1, 5.1])
    failed = wait_rows(shared, "predictions", "iris", "bad-one")
    assert failed["status"].to_list() == [400]
    assert failed["in_x0"].to_list() == [None] and failed["prediction"].to_list() == [None]
    names = [p.name for p in (shared.logs / "predictions" / "model=iris").glob("date=*/*")]
    assert all(n.endswith(".parquet") and not n.startswith(".") for n in names)


def test_feedback_is_logged_by_request_id(shared: Served) -> None:
    with shared.client() as c:
        labels = [{"id": "fb-1", "label": "setosa"}, {"id": "fb-2", "label": 3}]
        r = c.post("/v2/models/iris/feedback", json={"labels": labels})
        assert r.status_code == 200
        assert r.json() == {"received": 2, "accepted": 2, "matched": 0, "unmatched": 2}
        assert c.post("/v2/models/iris/feedback", json={"labels": []}).status_code == 400
        assert c.post("/v2/models/nope/feedback",
                      json={"labels": [{"id": "x", "label": 1}]}).status_code == 404  # fmt: skip
    rows = wait_rows(shared, "feedback", "iris", "fb-2")
    assert rows.columns == list(FEEDBACK_COLUMNS)
    assert rows["label"].to_list() == ["3"] and rows["label_value"].to_list() == [3.0]


def test_metrics_count_requests_and_batches(shared: Served) -> None:
    with shared.client() as c:
        c.post("/v1/models/iris:predict", json={"instances": [ROW]})
        c.post("/v2/models/iris/infer", content=b"{not json")
        text = c.get("/metrics").text
    assert 'mlgate_requests_total{model="iris",route="",status="400",version=""}' in text
    assert 'mlgate_requests_total{model="iris",route="champion",status="200",version="1"}' in text
    assert 'mlgate_request_latency_seconds_bucket{le="0.001",model="iris",stage="compute"}' in text
    assert "mlgate_batch_rows_bucket" in text
    assert 'mlgate_queue_rows{model="iris",version="1"}' in text
    assert 'mlgate_model_loads_total{model="iris",outcome="ok"} 1.0' in text
    assert 'mlgate_log_rows_dropped_total{kind="predictions"} 0.0' in text


def test_admin_needs_the_bearer_token(shared: Served) -> None:
    with shared.client() as c:
        assert c.get("/admin/models").status_code == 401
        assert c.post("/admin/reload").status_code == 401
        wrong = c.get("/admin/models", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "wrong" in wrong.json()["error"]
        ok = c.get("/admin/models", headers={"Authorization": "Bearer secret"})
        assert ok.status_code == 200
        models = {m["name"]: m for m in ok.json()["models"]}
        assert models["iris"]["loaded"][0]["version"] == 1
        assert models["iris"]["failures"] == {}
        settings = c.get("/admin/settings", headers={"Authorization": "Bearer secret"}).json()
        assert settings["admin_token"] == "***"
        r = c.post("/admin/reload?model=iris", headers={"Authorization": "Bearer secret"})
        assert r.status_code == 202
        # the rollout admin routes are mounted on the same app, behind the same token
        status = c.get(
            "/admin/models/iris/rollout/status", headers={"Authorization": "Bearer secret"}
        )
        assert status.status_code == 200, status.text
        assert c.get("/admin/models/iris/rollout/status").status_code == 401
