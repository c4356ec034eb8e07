"""Limits and tokens: body size, rows per request, predict token; admin disabled without one."""

from __future__ import annotations

from pathlib import Path

from gateway.settings import GatewaySettings
from registry import Registry
from tests.gateway.conftest import fit_iris, serve


def test_limits_and_tokens(tmp_path: Path) -> None:
    registry = Registry("file://" + str(tmp_path / "registry"))
    registry.register("iris", fit_iris())
    settings = GatewaySettings(
        poll_interval_s=0.05, max_body_bytes=4096, max_request_rows=10, predict_token="p-token"
    )
    auth = {"Authorization": "Bearer p-token"}
    with serve(registry, tmp_path / "logs", settings) as served, served.client() as c:
        rows = [[5.1, 3.5, 1.4, 0.2]]
        assert c.post("/v1/models/iris:predict", json={"instances": rows}).status_code == 401
        ok = c.post("/v1/models/iris:predict", json={"instances": rows}, headers=auth)
        assert ok.status_code == 200
        many = c.post("/v1/models/iris:predict", json={"instances": rows * 11}, headers=auth)
        assert many.status_code == 400
        assert "max_request_rows=10 rows, got 11" in many.json()["error"]
        big = c.post("/v1/models/iris:predict", json={"instances": rows * 300}, headers=auth)
        assert big.status_code == 413 and "error" in big.json()
        # metadata and health stay open; the admin API is disabled without an admin token
        assert c.get("/v2/models/iris").status_code == 200
        disabled = c.get("/admin/models", headers={"Authorization": "Bearer anything"})
        assert disabled.status_code == 403
        assert "MLGATE_ADMIN_TOKEN" in disabled.json()["error"]
        assert c.get("/admin/models/iris/rollout/status").status_code == 403


def test_compressed_bodies_whole_and_truncated(tmp_path: Path) -> None:
    import gzip
    import json

    registry = Registry("file://" + str(tmp_path / "registry"))
    registry.register("iris", fit_iris())
    body = gzip.compress(json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]] * 40}).encode())
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    with serve(registry, tmp_path / "logs") as served, served.client() as c:
        whole = c.post("/v1/models/iris:predict", content=body, headers=headers)
        assert whole.status_code == 200 and len(whole.json()["predictions"]) == 40
        cut = c.post("/v1/models/iris:predict", content=body[: len(body) // 2], headers=headers)
        assert cut.status_code == 400 and "truncated" in cut.json()["error"]


def test_deeply_nested_json_is_a_400_naming_the_limit(tmp_path: Path) -> None:
    registry = Registry("file://" + str(tmp_path / "registry"))
    registry.register("iris", fit_iris())
    deep = "[" * 1000 + "5.1" + "]" * 1000
    bodies = {
        "/v2/models/iris/infer": '{"inputs": [{"name": "input-0", "shape": [1, 4], '
        f'"datatype": "FP32", "data": {deep}}}]}}',
        "/v2/models/iris/feedback": f'{{"labels": {deep}}}',
        "/v1/models/iris:predict": f'{{"instances": {deep}}}',
        "/invocations": f'{{"instances": {deep}}}',
    }
    settings = GatewaySettings(poll_interval_s=0.05, admin_token="a-token")
    with serve(registry, tmp_path / "logs", settings) as served, served.client() as c:
        for path, body in bodies.items():
            r = c.post(path, content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 400, (path, r.status_code, r.text[:200])
            assert "nested deeper than" in r.json()["error"], (path, r.text[:200])
            assert "recursion limit" in r.json()["error"]
        admin = c.post("/admin/models/iris/rollout/weight", content=f'{{"weight": {deep}}}',
                       headers={"Authorization": "Bearer a-token"})  # fmt: skip
        assert admin.status_code == 400, admin.text[:200]
        # nested less deep than the decoder's limit: still a client error, never a 500
        half = "[" * 500 + "5.1" + "]" * 500
        for path in ("/v1/models/iris:predict", "/invocations", "/v2/models/iris/feedback"):
            key = "labels" if path.endswith("feedback") else "instances"
            r = c.post(path, content=f'{{"{key}": {half}}}',
                       headers={"Content-Type": "application/json"})  # fmt: skip
            assert 400 <= r.status_code < 500, (path, r.status_code, r.text[:200])
        assert c.get("/v2/health/ready").status_code == 200  # still serving
