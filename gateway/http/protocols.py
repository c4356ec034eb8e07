"""KServe V1 / TF Serving and MLflow scoring routes."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from gateway.codecs import v1
from gateway.http import predict
from gateway.http.oip import as_response
from gateway.http.predict import split_verb
from gateway.http.raw import RawRequest
from gateway.http.responses import json_response, raw_json
from gateway.service import Gateway


def protocol_routes(gw: Gateway) -> list[HTTPRouteHandler]:
    @get("/v1/models/{model:str}", sync_to_thread=False)
    def v1_status(model: FromPath[str]) -> Response[bytes]:
        state = gw.state(model)
        return raw_json(v1.model_status(model, state.champion is not None))

    @post("/v1/models/{spec:str}")
    async def v1_predict(request: Request[Any, Any, Any], spec: FromPath[str]) -> Response[bytes]:
        raw = RawRequest(request.scope, request.receive)
        return as_response(await predict.Operation("v1", split_verb(spec))(gw, raw))

    @post("/v1/models/{model:str}/versions/{spec:str}")
    async def v1_predict_version(
        request: Request[Any, Any, Any], model: FromPath[str], spec: FromPath[str]
    ) -> Response[bytes]:
        raw = RawRequest(request.scope, request.receive)
        return as_response(await predict.Operation("v1", model, split_verb(spec))(gw, raw))

    @post("/invocations")
    async def invocations(request: Request[Any, Any, Any]) -> Response[bytes]:
        raw = RawRequest(request.scope, request.receive)
        return as_response(await predict.Operation("mlflow", None)(gw, raw))

    @get("/ping", sync_to_thread=False)
    def ping() -> Response[bytes]:
        return json_response({"status": "ok"})

    return [v1_status, v1_predict, v1_predict_version, invocations, ping]
