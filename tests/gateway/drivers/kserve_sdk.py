"""Drive a server with the KServe Python SDK, as a KServe user would: ``InferenceRESTClient``
over protocol v1 and v2 and ``InferenceGRPCClient``; print what it answered as one JSON object.

    python -P kserve_sdk.py '{"http": "http://127.0.0.1:8080", "grpc": "127.0.0.1:8081",
                              "model": "iris", "regressor": "diabetes",
                              "rows": [[...]], "regressor_rows": [[...]]}'

Only KServe, numpy and the standard library are imported (no mlgate code), so what runs here is
exactly the client a KServe user has.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import grpc
import httpx
import numpy as np
from kserve import (
    InferenceGRPCClient,
    InferenceRESTClient,
    InferInput,
    InferRequest,
    RESTConfig,
)
from kserve.protocol.infer_type import RequestedOutput


def _outputs(response: Any) -> dict[str, list[Any]]:
    """Each output of an ``InferResponse`` as a list (bytes decoded)."""
    out: dict[str, list[Any]] = {}
    for output in response.outputs:
        values = output.as_numpy().tolist()
        out[output.name] = [v.decode() if isinstance(v, bytes) else v for v in values]
    return out


def _request(model: str, rows: np.ndarray, *, binary: bool, name: str = "input-0") -> InferRequest:
    tensor = InferInput(name, list(rows.shape), "FP32")
    if binary:
        tensor.set_data_from_numpy(rows, binary_data=True)
    else:
        tensor.data = rows.ravel().tolist()  # the typed form: JSON data / gRPC contents
    return InferRequest(model_name=model, infer_inputs=[tensor], request_id=f"kserve-{binary}")


async def _status_of(call: Any) -> list[Any]:
    """``[HTTP status, error text]`` of a REST call expected to fail."""
    try:
        await call
    except httpx.HTTPStatusError as exc:
        return [exc.response.status_code, str(exc)]
    return [200, ""]


async def rest_v1(cfg: dict[str, Any]) -> dict[str, Any]:
    url, model = cfg["http"], cfg["model"]
    client = InferenceRESTClient(RESTConfig(protocol="v1", timeout=30))
    try:
        answer = await client.infer(url, {"instances": cfg["rows"]}, model_name=model)
        regression = await client.infer(
            url, {"instances": cfg["regressor_rows"]}, model_name=cfg["regressor"]
        )
        return {
            "live": await client.is_server_live(url),
            "model_ready": await client.is_model_ready(url, model),
            "predictions": answer["predictions"],
            "regression": regression["predictions"],
            "explain": await _status_of(client.explain(url, model, {"instances": cfg["rows"]})),
            "unknown_model": await _status_of(
                client.infer(url, {"instances": cfg["rows"]}, model_name="nope")
            ),
            "bad_rows": await _status_of(
                client.infer(url, {"instances": [r[:3] for r in cfg["rows"]]}, model_name=model)
            ),
        }
    finally:
        await client.close()


async def rest_v2(cfg: dict[str, Any]) -> dict[str, Any]:
    url, model = cfg["http"], cfg["model"]
    rows = np.array(cfg["rows"], dtype=np.float32)
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
    try:
        as_json = await client.infer(url, _request(model, rows, binary=False), model_name=model)
        binary = await client.infer(url, _request(model, rows, binary=True), model_name=model)
        one = _request(model, rows, binary=False)
        one.request_outputs = [RequestedOutput("predict_proba")]
        only_proba = await client.infer(url, one, model_name=model)
        regressor_rows = np.array(cfg["regressor_rows"], dtype=np.float32)
        regression = await client.infer(
            url, _request(cfg["regressor"], regressor_rows, binary=True),
            model_name=cfg["regressor"],
        )  # fmt: skip
        return {
            "live": await client.is_server_live(url),
            "ready": await client.is_server_ready(url),
            "model_ready": await client.is_model_ready(url, model),
            "unknown_ready": await client.is_model_ready(url, "nope"),
            "json": _outputs(as_json),
            "binary": _outputs(binary),
            "only_proba": _outputs(only_proba),
            "regression": _outputs(regression),
            "id": as_json.id,
            "bad_name": await _status_of(
                client.infer(url, _request(model, rows, binary=False, name="x"), model_name=model)
            ),
            "bad_shape": await _status_of(
                client.infer(url, _request(model, rows[:, :3], binary=True), model_name=model)
            ),
        }
    finally:
        await client.close()


async def _grpc_error(call: Any) -> list[str]:
    """``[status code name, details]`` of an RPC expected to fail."""
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return [exc.code().name, exc.details() or ""]
    return ["OK", ""]


async def over_grpc(cfg: dict[str, Any]) -> dict[str, Any]:
    model = cfg["model"]
    rows = np.array(cfg["rows"], dtype=np.float32)
    async with InferenceGRPCClient(cfg["grpc"], timeout=30, retries=0) as client:
        raw = await client.infer(_request(model, rows, binary=True))
        typed = await client.infer(_request(model, rows, binary=False))
        regressor_rows = np.array(cfg["regressor_rows"], dtype=np.float32)
        regression = await client.infer(_request(cfg["regressor"], regressor_rows, binary=True))
        nan = rows.copy()
        nan[0, 0] = np.nan
        return {
            "live": await client.is_server_live(),
            "ready": await client.is_server_ready(),
            "model_ready": await client.is_model_ready(model),
            "raw": _outputs(raw),
            "typed": _outputs(typed),
            "regression": _outputs(regression),
            "model_version": raw.model_version,
            "errors": {
                "unknown_model": await _grpc_error(
                    client.infer(_request("nope", rows, binary=True))
                ),
                "bad_shape": await _grpc_error(
                    client.infer(_request(model, rows[:, :3], binary=True))
                ),
                "bad_name": await _grpc_error(
                    client.infer(_request(model, rows, binary=True, name="x"))
                ),
                "nan": await _grpc_error(client.infer(_request(model, nan, binary=True))),
                "float64_as_fp32": await _grpc_error(client.infer(_float64_as_fp32(model, rows))),
            },
            "live_after_errors": await client.is_server_live(),
        }


def _float64_as_fp32(model: str, rows: np.ndarray) -> InferRequest:
    """A tensor declared FP32 whose raw bytes are float64: twice the bytes its shape needs."""
    tensor = InferInput("input-0", list(rows.shape), "FP32")
    raw = rows.astype(np.float64).tobytes()  # what a mistaken client sends
    return InferRequest(model_name=model, infer_inputs=[tensor], raw_inputs=[raw])


async def main(cfg: dict[str, Any]) -> dict[str, Any]:
    return {"v1": await rest_v1(cfg), "v2": await rest_v2(cfg), "grpc": await over_grpc(cfg)}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))
