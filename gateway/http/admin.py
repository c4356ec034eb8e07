"""Admin API (bearer token): loaded models and failures, reload, route changes."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post, put
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from gateway.codecs.tabular import decode_json_object
from gateway.errors import BadRequest
from gateway.http.auth import require_admin
from gateway.http.responses import json_response
from gateway.service import Gateway
from registry.model import Canary, Route, Shadow


class RouteChange(msgspec.Struct, forbid_unknown_fields=True):
    champion: int | None = None
    canary: Canary | None = None
    shadows: list[Shadow] = []


def admin_routes(gw: Gateway) -> list[HTTPRouteHandler]:
    token = gw.settings.admin_token

    @get("/admin/models")
    async def models(request: Request[Any, Any, Any]) -> Response[bytes]:
        require_admin(request, token)
        return json_response(
            {
                "ready": gw.models.ready,
                "watcher_error": gw.models.last_error,
                "models": [s.describe() for _, s in sorted(gw.models.states.items())],
            }
        )

    @get("/admin/models/{model:str}")
    async def model(request: Request[Any, Any, Any], model: FromPath[str]) -> Response[bytes]:
        require_admin(request, token)
        return json_response(gw.state(model).describe())

    @post("/admin/reload")
    async def reload(request: Request[Any, Any, Any]) -> Response[bytes]:
        require_admin(request, token)
        name = request.query_params.get("model")
        gw.models.reload(name)
        return json_response({"reloading": name or "all"}, 202)

    @put("/admin/models/{model:str}/route")
    async def set_route(request: Request[Any, Any, Any], model: FromPath[str]) -> Response[bytes]:
        """Write route.json (compare-and-swap in the registry); the watcher then loads it."""
        require_admin(request, token)
        data = decode_json_object(await request.body(), "route")
        try:
            change = msgspec.convert(data, RouteChange)
        except msgspec.ValidationError as exc:
            raise BadRequest(f"route: {exc}") from None

        def apply(route: Route) -> Route:
            return msgspec.structs.replace(
                route, champion=change.champion, canary=change.canary, shadows=change.shadows
            )

        import asyncio

        new = await asyncio.to_thread(
            gw.registry.update_route, model, apply, kind="route", actor="admin-api"
        )
        gw.models.reload(model)
        return json_response(msgspec.to_builtins(new))

    @get("/admin/settings")
    async def settings(request: Request[Any, Any, Any]) -> Response[bytes]:
        require_admin(request, token)
        values = msgspec.to_builtins(gw.settings)
        values["admin_token"] = "***" if values.get("admin_token") else None
        values["predict_token"] = "***" if values.get("predict_token") else None
        return json_response(values)

    return [models, model, reload, set_route, settings]
