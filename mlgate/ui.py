"""Composition of the dashboard: locations + ``[dashboard]`` settings -> its Litestar app.

``mlgate ui`` serves it on its own at ``/``; ``mlgate serve`` mounts it at
``[dashboard] mount_path`` (default ``/ui``) beside the gateway. Either way it reads the same
registry, log store and monitor state (``<home>/monitor.duckdb``) as the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from litestar import Litestar

    from mlgate.settings import Locations


def dashboard_app(where: Locations, *, base: str = "") -> Litestar:
    """The dashboard for the installation at ``where``, served under ``base``."""
    from dashboard import DashboardSettings, create_app
    from registry import Registry

    settings = DashboardSettings.from_mapping(where.section("dashboard"))
    return create_app(
        Registry(where.registry),
        logs_url=where.logs,
        monitor_db=str(where.monitor_db),
        settings=settings,
        base=base,
    )
