"""Composition root of a gateway worker: settings + registry + log store -> the served front.

``create_gateway_front`` is what tests and embedding code call: it builds the ``Gateway``, the
Litestar app around it and the RSGI ``GatewayFront`` granian serves. ``front_from_env`` is the
zero-argument factory each granian worker process imports (``mlgate serve --workers N``): it
reads the registry and log URLs and the gateway settings from environment variables that
``mlgate serve`` sets before starting the server, and applies the process-wide tuning
(``mlgate.process``) that only a whole worker process may apply.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gateway.http.front import GatewayFront

ENV_REGISTRY = "MLGATE_REGISTRY"
ENV_LOGS = "MLGATE_LOGS"
ENV_SETTINGS = "MLGATE_GATEWAY_SETTINGS"  # JSON of GatewaySettings, set by `mlgate serve`
ENV_LOG_LEVEL = "MLGATE_LOG_LEVEL"  # `mlgate serve --log-level`, for the workers' own log


def create_gateway_front(
    settings: GatewaySettings | None = None,
    registry_url: str | None = None,
    logs_url: str | None = None,
    *,
    registry: Any = None,
    load_runtime: Callable[..., Any] | None = None,
    tune_process: bool = False,
    grpc: bool = False,
) -> GatewayFront:
    """The front of a gateway serving the models of ``registry_url`` (or of the given
    ``registry``), logging predictions under ``logs_url`` (``None``: no prediction log).
    ``tune_process``: apply ``mlgate.process``'s process-wide tuning at start-up (worker
    processes do; a test or a host program keeps its own settings). With ``grpc``, OIP over
    gRPC on ``settings.grpc_host:grpc_port`` too (unless the port is 0), started and stopped
    with the gateway."""
    # imported here: the CLI imports this module for its constants, and every `mlgate`
    # command would otherwise pay for Litestar and the runtimes at start-up
    from gateway.http import GatewayFront, create_app
    from gateway.service import Gateway
    from mlgate import process

    settings = settings or GatewaySettings.from_mapping()
    if registry is None:
        from registry import Registry

        registry = Registry(registry_url) if registry_url else Registry.from_env()
    if tune_process:
        process.tune_process(settings)
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
    on_startup: tuple[Callable[[], Awaitable[None]], ...] = ()
    if tune_process:

        async def freeze() -> None:  # the start-up's objects (models loaded) live long
            process.freeze_heap(settings)

        on_startup = (freeze,)
    return GatewayFront(gateway, create_app(gateway), on_startup=on_startup)


def front_from_env() -> GatewayFront:
    """The worker factory granian imports (``mlgate.app:front_from_env``, ``factory=True``)."""
    from mlgate import process

    process.stop_with_parent()
    process.log_to_stderr(os.environ.get(ENV_LOG_LEVEL, "info"))
    raw = os.environ.get(ENV_SETTINGS)
    settings = GatewaySettings.from_json(raw) if raw else GatewaySettings.from_mapping()
    front = create_gateway_front(
        settings,
        registry_url=os.environ.get(ENV_REGISTRY),
        logs_url=os.environ.get(ENV_LOGS),
        tune_process=True,
        grpc=True,
    )
    from mlgate.ui import mount_from_env

    mount_from_env(front.app)  # the dashboard, at /ui, in the Litestar app behind the front
    return front
