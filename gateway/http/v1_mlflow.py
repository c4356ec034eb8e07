"""KServe V1 / TF Serving and MLflow scoring routes besides predict (``:predict`` and
``/invocations`` are answered by the front, ``gateway.http.routes``)."""

from __future__ import annotations

from litestar import Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from gateway.codecs import v1
from gateway.http.responses import json_response, raw_json
from gateway.service import Gateway


def v1_mlflow_routes(gw: Gateway) -> list[HTTPRouteHandler]:
    @get("/v1/models/{model:str}", sync_to_thread=False)
    def v1_status(model: FromPath[str]) -> Response[bytes]:
        state = gw.state(model)
        return raw_json(v1.model_status(model, state.champion is not None))

    @get("/ping", sync_to_thread=False)
    def ping() -> Response[bytes]:
        return json_response({"status": "ok"})

    return [v1_status, ping]
