"""Composition root of a gateway worker: settings + registry + log store -> Litestar app.

``create_gateway_app`` is what tests and embedding code call. ``app_from_env`` is the
zero-argument factory uvicorn/granian import in each worker process (``--workers N``): it reads
the registry and log URLs and the gateway settings from environment variables that
``mlgate serve`` sets before starting the server.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from collections.abc import Callable

    from litestar import Litestar

    from gateway.http.fastpath import FastPath

ENV_REGISTRY = "MLGATE_REGISTRY"
ENV_LOGS = "MLGATE_LOGS"
ENV_SETTINGS = "MLGATE_GATEWAY_SETTINGS"  # JSON of GatewaySettings, set by `mlgate serve`


def create_gateway_app(
    settings: GatewaySettings | None = None,
    registry_url: str | None = None,
    logs_url: str | None = None,
    *,
    registry: Any = None,
    load_runtime: Callable[..., Any] | None = None,
    grpc: bool = False,
) -> FastPath | Litestar:
    """A gateway app serving the models of ``registry_url`` (or of the given ``registry``),
    logging predictions under ``logs_url`` (``None``: no prediction log); with ``grpc``, OIP
    over gRPC on ``settings.grpc_host:grpc_port`` too (unless the port is 0), started and
    stopped with the app."""
    # imported here: the CLI imports this module for its constants, and every `mlgate`
    # command would otherwise pay for Litestar and the runtimes at start-up
    from gateway.http import create_app
    from gateway.service import Gateway

    settings = settings or GatewaySettings.from_mapping()
    if registry is None:
        from registry import Registry

        registry = Registry(registry_url) if registry_url else Registry.from_env()
    gateway = Gateway(registry, settings=settings, logs_url=logs_url, load_runtime=load_runtime)
    if grpc and settings.grpc_port:
        from gateway.grpc import GrpcServer

        gateway.add_service(
            GrpcServer(
                gateway,
                host=settings.grpc_host or "127.0.0.1",
                port=settings.grpc_port,
                reuse_port=settings.grpc_reuse_port,
            )
        )
    return create_app(gateway)  # app.state.gateway is the Gateway


def app_from_env() -> FastPath | Litestar:
    """The worker factory for ``uvicorn --factory mlgate.app:app_from_env`` (and granian)."""
    raw = os.environ.get(ENV_SETTINGS)
    settings = GatewaySettings.from_json(raw) if raw else GatewaySettings.from_mapping()
    app = create_gateway_app(
        settings,
        registry_url=os.environ.get(ENV_REGISTRY),
        logs_url=os.environ.get(ENV_LOGS),
        grpc=True,
    )
    from gateway.http.fastpath import FastPath
    from mlgate.ui import mount_from_env

    mount_from_env(app.app if isinstance(app, FastPath) else app)  # the dashboard, at /ui
    return app
