"""The endpoints other servers' clients call besides predict: Triton's model configuration,
statistics and repository extensions, KServe V1's server endpoints, MLflow's probes."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

import gateway
from gateway.codecs import triton
from gateway.codecs.tabular import decode_json_object
from gateway.errors import BadRequest
from gateway.http.auth import require_admin
from gateway.http.predict import parse_version
from gateway.http.responses import json_response
from gateway.repository import load_model, unload_model
from gateway.service import Gateway


def triton_routes(gw: Gateway) -> list[HTTPRouteHandler]:
    settings = gw.settings

    @get("/v2/models/{model:str}/config", sync_to_thread=False)
    def config(model: FromPath[str]) -> Response[bytes]:
        loaded, _ = gw.state(model).choose_champion()
        return json_response(triton.model_config(loaded, settings))

    @get("/v2/models/{model:str}/versions/{version:str}/config", sync_to_thread=False)
    def version_config(model: FromPath[str], version: FromPath[str]) -> Response[bytes]:
        loaded, _ = gw.state(model).explicit(parse_version(version))
        return json_response(triton.model_config(loaded, settings))

    @get("/v2/models/stats", sync_to_thread=False)
    def all_stats() -> Response[bytes]:
        states = [gw.models.states[name] for name in sorted(gw.models.states)]
        return json_response(triton.model_statistics(gw.metrics, states))

    @get("/v2/models/{model:str}/stats", sync_to_thread=False)
    def stats(model: FromPath[str]) -> Response[bytes]:
        return json_response(triton.model_statistics(gw.metrics, [gw.state(model)]))

    @get("/v2/models/{model:str}/versions/{version:str}/stats", sync_to_thread=False)
    def version_stats(model: FromPath[str], version: FromPath[str]) -> Response[bytes]:
        state = gw.state(model)
        number = parse_version(version)
        state.explicit(number)  # 404 for a version that is not loaded
        return json_response(triton.model_statistics(gw.metrics, [state], number))

    @post("/v2/repository/index")
    async def index(request: Request[Any, Any, Any]) -> Response[bytes]:
        body = await request.body()
        ready = False
        if body.strip():
            data = decode_json_object(body, "repository index request")
            ready = data.get("ready", False)
            if not isinstance(ready, bool):
                raise BadRequest(f"repository index request: 'ready': expected a boolean, "
                                 f"got {ready!r}")  # fmt: skip
        return json_response(
            triton.repository_index(gw.models.states, ready_only=ready), status=200
        )

    @post("/v2/repository/models/{model:str}/load")
    async def load(request: Request[Any, Any, Any], model: FromPath[str]) -> Response[bytes]:
        require_admin(request, settings.admin_token)
        body = await request.body()
        parameters = decode_json_object(body, "load request").get("parameters") if body else None
        await load_model(gw, model, timeout_s=settings.request_timeout_s, parameters=parameters)
        return json_response({}, status=200)

    @post("/v2/repository/models/{model:str}/unload")
    async def unload(request: Request[Any, Any, Any], model: FromPath[str]) -> Response[bytes]:
        require_admin(request, settings.admin_token)
        gw.state(model)
        unload_model(model)

    return [config, version_config, all_stats, stats, version_stats, index, load, unload]


def server_routes(gw: Gateway) -> list[HTTPRouteHandler]:
    """KServe V1's liveness and model list; MLflow's scoring-server probes."""
    version_text = str(getattr(gateway, "__version__", "0.1.0"))

    @get("/", sync_to_thread=False)
    def alive() -> Response[bytes]:
        return json_response({"status": "alive"})

    @get("/v1/models", sync_to_thread=False)
    def v1_models() -> Response[bytes]:
        return json_response({"models": sorted(gw.models.states)})

    @get("/health", sync_to_thread=False)
    def health() -> Response[bytes]:
        ok = gw.models.ready and not gw.closing
        return json_response({"status": "ok" if ok else "loading"}, 200 if ok else 503)

    @get("/version", sync_to_thread=False)
    def version() -> Response[bytes]:
        return Response(content=version_text.encode(), media_type="text/plain")

    return [alive, v1_models, health, version]


def extension_routes(gw: Gateway) -> list[HTTPRouteHandler]:
    return [*triton_routes(gw), *server_routes(gw)]
