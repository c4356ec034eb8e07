"""``mlgate ui``: the web dashboard on its own, at ``/``."""

from __future__ import annotations

from typing import Annotated

import typer

from mlgate.cli.common import HomeOption, LogsOption, RegistryOption, err_console, fail, locations


def attach(app: typer.Typer) -> None:
    app.command("ui")(ui)


def ui(
    home: HomeOption = None,
    registry: RegistryOption = None,
    logs: LogsOption = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8090,
    log_level: Annotated[str, typer.Option("--log-level", help="Server log level.")] = "warning",
) -> None:
    """Serve the web dashboard (models, rollouts, drift, events, actions) at http://HOST:PORT/."""
    from dashboard import DashboardSettingsError
    from mlgate.settings import ConfigError
    from mlgate.ui import dashboard_app

    where = locations(home, registry, logs)
    if not 0 < port < 65536:
        fail(f"--port: expected 1 to 65535, got {port}")
    try:
        app = dashboard_app(where)
    except (DashboardSettingsError, ConfigError) as exc:
        fail(str(exc))
    import uvicorn

    err_console.print(
        f"mlgate dashboard on http://{host}:{port}/ ; registry {where.registry}; "
        f"logs {where.logs}; monitor {where.monitor_db}",
        highlight=False,
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        lifespan="on",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
