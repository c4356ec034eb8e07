"""The Litestar application of one gateway worker: every endpoint but predict.

To add an endpoint, add its route handler to the list in ``create_app`` (predict endpoints
are answered by the front instead: ``gateway.http.routes``).
"""

from __future__ import annotations

import msgspec
from litestar import Litestar, Response, get
from litestar.exceptions import HTTPException

from gateway.http.admin import admin_routes
from gateway.http.admin_rollout import rollout_router
from gateway.http.extensions import extension_routes
from gateway.http.oip import oip_routes
from gateway.http.openapi import openapi_document
from gateway.http.responses import make_exception_handler
from gateway.http.v1_mlflow import v1_mlflow_routes
from gateway.metrics import CONTENT_TYPE
from gateway.service import Gateway


def create_app(gw: Gateway) -> Litestar:
    """Routes and the error edge around a ``Gateway`` (its lifecycle is the front's)."""

    @get("/metrics", sync_to_thread=False)
    def metrics() -> Response[bytes]:
        return Response(content=gw.metrics.render(), media_type=CONTENT_TYPE)

    document = msgspec.json.encode(openapi_document())

    @get("/openapi.json", sync_to_thread=False)
    def openapi() -> Response[bytes]:
        """The OpenAPI 3.1 document of every endpoint, the front's predict ones included."""
        return Response(content=document, media_type="application/json")

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
            *v1_mlflow_routes(gw),
            *extension_routes(gw),
            *admin_routes(gw),
            rollout,
            metrics,
            openapi,
        ],
        exception_handlers={HTTPException: handler, Exception: handler},
        request_max_body_size=gw.settings.max_body_bytes,
        debug=False,
        openapi_config=None,
        logging_config=None,
    )
    app.state.gateway = gw
    return app
