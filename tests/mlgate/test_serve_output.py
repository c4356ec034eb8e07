"""``mlgate serve`` says what it serves: a line when a model is loaded, when its route changes
(a canary, a promotion) and, with ``--access-log``, one per request."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from registry import Registry
from registry import rollout as rollouts
from tests.helpers import free_port, wait_for

CLI = [sys.executable, "-P", "-c", "from mlgate.cli import main; main()"]
BODY = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32",
                    "data": [5.1, 3.5, 1.4, 0.2]}]}  # fmt: skip


@pytest.mark.slow
def test_serve_prints_loads_route_changes_and_access_lines(tmp_path: Path) -> None:
    X, y = load_iris(return_X_y=True)
    reg = Registry(str(tmp_path / "registry"))
    reg.register("iris", LogisticRegression(max_iter=300).fit(X, y))
    reg.register("iris", LogisticRegression(C=0.1, max_iter=300).fit(X, y))
    (tmp_path / "mlgate.toml").write_text("[gateway]\npoll_interval_s = 0.2\n")
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [*CLI, "serve", "--role", "gateway", "--port", str(port), "--grpc-port", "0",
         "--access-log", "--registry", str(tmp_path / "registry"),
         "--logs", str(tmp_path / "logs")],
        cwd=tmp_path, env={**os.environ, "MLGATE_HOME": str(tmp_path / "home")},
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    out = tmp_path / "serve.log"
    try:

        def ready() -> bool:
            assert process.poll() is None, out.read_text()
            try:
                return httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, 120, 0.1)
        assert httpx.post(f"{url}/v2/models/iris/infer", json=BODY).status_code == 200
        rollouts.start_rollout(reg, "iris", 2, weight=20.0, actor="test")
        wait_for(lambda: "canary v2 at 20%" in out.read_text(), 60, 0.1)
    finally:
        process.terminate()
        process.wait(60)
        log.close()
    text = out.read_text()
    assert "model iris version 1 loaded" in text
    assert "model iris: champion v1, no canary, no shadow" in text
    assert "model iris: champion v1, canary v2 at 20%, no shadow" in text
    assert "/v2/models/iris/infer" in text  # the access log line
