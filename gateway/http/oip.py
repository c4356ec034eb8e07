"""Open Inference Protocol (KServe V2) routes, with Triton's binary tensor data extension."""

from __future__ import annotations

from litestar import Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

import gateway
from gateway.codecs.oip import EXTENSIONS, SERVER_NAME, model_metadata
from gateway.http.predict import parse_version
from gateway.http.responses import json_response
from gateway.service import Gateway


def metadata_routes(gw: Gateway) -> list[HTTPRouteHandler]:
    version_text = getattr(gateway, "__version__", "0.1.0")

    @get("/v2", sync_to_thread=False)
    def server_metadata() -> Response[bytes]:
        return json_response(
            {"name": SERVER_NAME, "version": version_text, "extensions": EXTENSIONS}
        )

    @get("/v2/health/live", sync_to_thread=False)
    def live() -> Response[bytes]:
        return json_response({"live": True})

    @get("/v2/health/ready", sync_to_thread=False)
    def ready() -> Response[bytes]:
        ok = gw.models.ready and not gw.closing
        return json_response({"ready": ok}, 200 if ok else 503)

    @get("/v2/models/{model:str}", sync_to_thread=False)
    def metadata(model: FromPath[str]) -> Response[bytes]:
        state = gw.state(model)
        loaded, _ = state.choose_champion()
        return json_response(model_metadata(state, loaded))

    @get("/v2/models/{model:str}/versions/{version:str}", sync_to_thread=False)
    def version_metadata(model: FromPath[str], version: FromPath[str]) -> Response[bytes]:
        state = gw.state(model)
        loaded, _ = state.explicit(parse_version(version))
        return json_response(model_metadata(state, loaded))

    @get("/v2/models/{model:str}/ready", sync_to_thread=False)
    def model_ready(model: FromPath[str]) -> Response[bytes]:
        state = gw.state(model)
        ok = state.champion is not None
        return json_response({"name": model, "ready": ok}, 200 if ok else 503)

    @get("/v2/models/{model:str}/versions/{version:str}/ready", sync_to_thread=False)
    def version_ready(model: FromPath[str], version: FromPath[str]) -> Response[bytes]:
        state = gw.state(model)
        ok = parse_version(version) in state.versions
        return json_response({"name": model, "version": version, "ready": ok}, 200 if ok else 503)

    return [server_metadata, live, ready, metadata, version_metadata, model_ready, version_ready]


def oip_routes(gw: Gateway) -> list[HTTPRouteHandler]:
    """Metadata and health (``.../infer`` and ``.../feedback`` are answered by the front,
    ``gateway.http.routes``)."""
    return metadata_routes(gw)
