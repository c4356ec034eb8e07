"""The naive baseline server and the MLServer folder layout (without installing MLServer)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from benchmarks import mlserver_peer, workload
from benchmarks.proc import ServerProcess, free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # starts a Litestar server in a subprocess
def test_naive_server_answers_like_predict_proba(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 32)).astype(np.float32)
    model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    joblib.dump(model, tmp_path / "m.joblib")
    port = free_port()
    server = ServerProcess(
        name="naive",
        argv=[sys.executable, "-m", "benchmarks.naive_server", "--port", str(port)]
        + ["--model", str(tmp_path / "m.joblib")],
        base_url=f"http://127.0.0.1:{port}",
        ready_path="/v2/health/ready",
        cwd=str(REPO),
        log_path=tmp_path / "naive.log",
    )
    with server, httpx.Client(base_url=server.base_url) as client:
        ok = client.post("/v2/models/rf/infer", json=workload.oip_body(X[:3]))
        wrong_model = client.post("/v2/models/nope/infer", json=workload.oip_body(X[:1]))
        bad_shape = client.post("/v2/models/rf/infer", json=workload.oip_body(X[:1, :31]))
    assert ok.status_code == 200
    got = workload.proba_from_oip(ok.json(), n_rows=3)
    assert np.abs(got - model.predict_proba(X[:3])).max() < 1e-9
    assert wrong_model.status_code == 404
    assert bad_shape.status_code == 400


def test_mlserver_folder_has_the_documented_settings(tmp_path: Path) -> None:
    model_file = tmp_path / "src.joblib"
    model_file.write_bytes(b"not really a model")
    mlserver_peer.write_server_folder(
        tmp_path / "srv", model_file, http_port=1, grpc_port=2, metrics_port=3
    )
    settings = json.loads((tmp_path / "srv" / "settings.json").read_text())
    model = json.loads((tmp_path / "srv" / "rf" / "model-settings.json").read_text())
    assert settings["host"] == "127.0.0.1"
    assert (settings["http_port"], settings["grpc_port"], settings["metrics_port"]) == (1, 2, 3)
    assert model["max_batch_size"] == 32 and model["max_batch_time"] == 0.002
    assert "parallel_workers" not in model  # MLServer's default
    assert model["parameters"]["extra"] == {"predict_fn": "predict_proba"}
    assert (tmp_path / "srv" / "rf" / "model.joblib").read_bytes() == b"not really a model"
