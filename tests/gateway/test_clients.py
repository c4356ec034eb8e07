"""What Triton's, KServe's and MLflow's clients call besides inference, against a real
``mlgate serve`` process: Triton's model configuration, statistics, repository and
classification extensions (``tritonclient.http`` and ``.grpc``), strict input names, KServe V1's
server endpoints and MLflow's probes, Parquet bodies and error shape.

Served by the ``sklearn`` backend: answers must equal the estimator's own exactly.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from registry import Registry
from tests.gateway.conftest import fit_diabetes, fit_iris, iris
from tests.gateway.mlgate_process import ServedProcess, mlgate_serve

pytestmark = pytest.mark.slow
ADMIN = {"authorization": "Bearer secret"}  # lower case: gRPC metadata keys must be


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedProcess]:
    root = tmp_path_factory.mktemp("clients")
    registry = Registry("file://" + str(root / "registry"))
    X, _ = iris()
    registry.register("iris", fit_iris(), reference=X[:50])
    registry.register("diabetes", fit_diabetes())
    config = '[gateway]\nbackend = "sklearn"\nadmin_token = "secret"\nmax_delay_us = 200\n'
    with mlgate_serve(root, config) as served:
        yield served


@pytest.fixture(params=["http", "grpc"])
def triton(server: ServedProcess, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Triton's client module and a connected client, over HTTP then gRPC."""
    module: Any = triton_http if request.param == "http" else triton_grpc
    address = server.http_address if request.param == "http" else server.grpc_address
    client = module.InferenceServerClient(address)
    yield module, client
    client.close()


def _input(module: Any, X: np.ndarray, name: str = "input-0") -> Any:
    tensor = module.InferInput(name, list(X.shape), "FP32")
    tensor.set_data_from_numpy(X)
    return tensor


def test_model_config(triton: Any) -> None:
    module, client = triton
    config = client.get_model_config("iris", **_as_json(module))
    config = config.get("config", config)  # gRPC wraps it in {"config": ...}
    assert config["name"] == "iris" and int(config["max_batch_size"]) == 65536
    assert config["input"][0]["name"] == "input-0"
    assert [int(d) for d in config["input"][0]["dims"]] == [4]
    assert config["dynamic_batching"]["preferred_batch_size"] == [256]
    assert int(config["dynamic_batching"]["max_queue_delay_microseconds"]) == 200
    versioned = client.get_model_config("iris", "1", **_as_json(module))
    assert versioned.get("config", versioned)["name"] == "iris"
    with pytest.raises(InferenceServerException, match="not found"):
        client.get_model_config("nope")


def _as_json(module: Any) -> dict[str, bool]:
    return {"as_json": True} if module is triton_grpc else {}


def test_statistics_count_what_was_served(triton: Any) -> None:
    module, client = triton
    before = _iris_stats(client, module)
    X, _ = iris()
    for rows in (X[:3], X[3:8]):
        client.infer("iris", [_input(module, rows)])
    after = _iris_stats(client, module)
    assert int(after["inference_count"]) - int(before["inference_count"]) == 8
    success = after["inference_stats"]["success"]
    assert int(success["count"]) - int(before["inference_stats"]["success"]["count"]) == 2
    assert int(success["ns"]) > 0 and int(after["execution_count"]) >= 1
    counts = {int(after["inference_stats"][k]["count"]) for k in
              ("compute_input", "compute_infer", "compute_output")}  # fmt: skip
    assert counts == {int(success["count"])}  # perf_analyzer refuses unequal counts
    assert int(after["last_inference"]) > 0
    everything = client.get_inference_statistics(**_as_json(module))["model_stats"]
    assert {s["name"] for s in everything} == {"iris", "diabetes"}


def _iris_stats(client: Any, module: Any) -> dict[str, Any]:
    stats = client.get_inference_statistics("iris", "1", **_as_json(module))["model_stats"]
    assert len(stats) == 1 and stats[0]["name"] == "iris" and stats[0]["version"] == "1"
    stats[0].setdefault("inference_count", 0)  # proto3 JSON leaves zeros out
    stats[0]["inference_stats"].setdefault("success", {}).setdefault("count", 0)
    return dict(stats[0])


def test_repository_index_load_and_unload(triton: Any) -> None:
    module, client = triton
    index = client.get_model_repository_index(**_as_json(module))
    index = index.get("models", index) if isinstance(index, dict) else index
    assert {(m["name"], m["version"], m["state"]) for m in index} == {
        ("diabetes", "1", "READY"),
        ("iris", "1", "READY"),
    }
    client.load_model("iris", headers=ADMIN)  # re-reads the route; answers once it serves
    assert client.is_model_ready("iris")
    with pytest.raises(InferenceServerException, match="bearer token"):
        client.load_model("iris", headers={"authorization": "Bearer wrong"})
    with pytest.raises(InferenceServerException, match="not found in the registry"):
        client.load_model("nope", headers=ADMIN)
    with pytest.raises(InferenceServerException, match="change the route instead"):
        client.unload_model("iris", headers=ADMIN)
    assert client.is_model_ready("iris")  # still served


def test_classification_extension(triton: Any) -> None:
    module, client = triton
    X, _ = iris()
    rows = X[::25]  # 6 rows, all three classes
    asked = [module.InferRequestedOutput("predict_proba", class_count=2)]
    result = client.infer("iris", [_input(module, rows)], outputs=asked)
    top = result.as_numpy("predict_proba")
    assert top.shape == (6, 2)
    proba = fit_iris().predict_proba(rows)
    classes = fit_iris().classes_
    for row, entries in enumerate(top):
        best = np.argsort(-proba[row], kind="stable")[:2]
        expected = [f"{proba[row, i]:f}:{i}:{classes[i]}" for i in best]
        assert [e.decode() for e in entries] == expected
    too_many = [module.InferRequestedOutput("predict_proba", class_count=9)]
    assert client.infer("iris", [_input(module, rows)], outputs=too_many).as_numpy(
        "predict_proba"
    ).shape == (6, 3)  # capped at the number of classes, as Triton does
    with pytest.raises(InferenceServerException, match="applies to the class scores"):
        client.infer(
            "iris",
            [_input(module, rows)],
            outputs=[module.InferRequestedOutput("predict", class_count=1)],
        )


def test_an_undeclared_input_name_is_refused(triton: Any) -> None:
    module, client = triton
    X, _ = iris()
    with pytest.raises(InferenceServerException, match="'x': not an input of this model"):
        client.infer("iris", [_input(module, X[:2], name="x")])


# -- KServe V1 server endpoints (the calls kserve's InferenceRESTClient makes for protocol v1) --
def test_kserve_v1_server_endpoints(server: ServedProcess) -> None:
    with httpx.Client(base_url=server.http_url) as c:
        assert c.get("/").json() == {"status": "alive"}
        assert c.get("/v1/models").json() == {"models": ["diabetes", "iris"]}
        assert c.get("/v1/models/iris").json() == {"name": "iris", "ready": True}
        X, _ = iris()
        r = c.post("/v1/models/iris:predict", json={"instances": X[:3].tolist()})
        assert r.json() == {"predictions": fit_iris().predict(X[:3]).tolist()}
        explain = c.post("/v1/models/iris:explain", json={"instances": X[:1].tolist()})
        assert explain.status_code == 501 and "use :predict" in explain.json()["error"]


# -- MLflow scoring server: what ScoringServerClient and `mlflow models serve` probes call -----
def test_mlflow_probes(server: ServedProcess) -> None:
    with httpx.Client(base_url=server.http_url) as c:
        assert c.get("/ping").status_code == 200
        assert c.get("/health").status_code == 200
        version = c.get("/version")
        assert version.status_code == 200 and version.text.count(".") >= 1


@pytest.mark.parametrize("media", ["application/x-parquet", "application/vnd.apache.parquet"])
def test_mlflow_parquet_body(server: ServedProcess, media: str) -> None:
    X, _ = iris()
    rows = X[::30]
    table = pa.table({f"x{j}": rows[:, j] for j in range(4)})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    with httpx.Client(base_url=server.http_url) as c:
        r = c.post("/invocations?model=iris", content=sink.getvalue(),
                   headers={"Content-Type": media})  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json() == {"predictions": fit_iris().predict(rows).tolist()}
        missing = io.BytesIO()
        pq.write_table(table.drop_columns(["x3"]), missing)
        bad = c.post("/invocations?model=iris", content=missing.getvalue(),
                     headers={"Content-Type": media})  # fmt: skip
        assert bad.status_code == 400 and "missing ['x3']" in bad.json()["message"]
        garbage = c.post("/invocations?model=iris", content=b"PAR1 not really",
                         headers={"Content-Type": media})  # fmt: skip
        assert garbage.status_code == 400 and "Parquet" in garbage.json()["message"]


def test_mlflow_error_shape(server: ServedProcess) -> None:
    with httpx.Client(base_url=server.http_url) as c:
        r = c.post("/invocations?model=iris", json={"nothing": 1})
        body = r.json()
        assert r.status_code == 400 and body["error_code"] == "BAD_REQUEST"
        assert "dataframe_split" in body["message"]
        unknown = c.post("/invocations?model=nope", json={"instances": [[1, 2, 3, 4]]})
        assert unknown.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        media = c.post("/invocations?model=iris", content=b"x", headers={"Content-Type": "a/b"})
        assert media.status_code == 415 and "application/x-parquet" in media.json()["message"]
