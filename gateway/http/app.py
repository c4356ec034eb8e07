"""The Litestar application of one gateway worker."""

from __future__ import annotations

from litestar import Litestar, Response, get
from litestar.exceptions import HTTPException

from gateway.http.admin import admin_routes
from gateway.http.admin_rollout import rollout_router
from gateway.http.extensions import extension_routes
from gateway.http.fastpath import FastPath
from gateway.http.oip import oip_routes
from gateway.http.protocols import protocol_routes
from gateway.http.responses import make_exception_handler
from gateway.metrics import CONTENT_TYPE
from gateway.service import Gateway


def create_app(gw: Gateway) -> FastPath | Litestar:
    """Routes, the error edge and the lifespan (start loads models; shutdown drains them and
    flushes the log) around a ``Gateway``; with ``settings.fast_path`` the predict endpoints
    are answered by ``FastPath`` in front of the Litestar app (same operations, same errors)."""
    limit = gw.settings.max_body_bytes

    @get("/metrics", sync_to_thread=False)
    def metrics() -> Response[bytes]:
        return Response(content=gw.metrics.render(), media_type=CONTENT_TYPE)

    handler = make_exception_handler(gw.metrics)
    rollout = rollout_router(
        registry=gw.registry,
        logs=gw.logs_url,
        admin_token=gw.settings.admin_token,
        on_change=gw.models.reload,
    )
    app = Litestar(
        route_handlers=[
            *oip_routes(gw),
            *protocol_routes(gw),
            *extension_routes(gw),
            *admin_routes(gw),
            rollout,
            metrics,
        ],
        on_startup=[gw.start],
        on_shutdown=[gw.aclose],
        exception_handlers={HTTPException: handler, Exception: handler},
        request_max_body_size=limit,
        debug=False,
        openapi_config=None,
        logging_config=None,
    )
    app.state.gateway = gw
    return FastPath(app, gw, gw.metrics) if gw.settings.fast_path else app
