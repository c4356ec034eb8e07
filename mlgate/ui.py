"""Composition of the dashboard: locations + ``[dashboard]`` settings -> its Litestar app.

``mlgate ui`` serves it on its own at ``/``; ``mlgate serve`` mounts it at
``[dashboard] mount_path`` (default ``/ui``) beside the gateway. Either way it reads the same
registry, log store and monitor state (``<home>/monitor.duckdb``) as the CLI.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from litestar import Litestar

    from mlgate.settings import Locations


def dashboard_app(where: Locations, *, base: str = "") -> Litestar:
    """The dashboard for the installation at ``where``, served under ``base``."""
    from dashboard import DashboardSettings, create_app
    from registry import Registry

    settings = DashboardSettings.from_mapping(where.section("dashboard"))
    registry = Registry(where.registry)
    return create_app(
        registry,
        logs_url=where.logs,
        monitor_db=str(where.monitor_db),
        settings=settings,
        base=base,
        retrain=_retrain(where, registry),
    )


def _retrain(where: Locations, registry: Any) -> Callable[[str], Any] | None:
    """Runs started from the dashboard, set up as ``mlgate trainer retrain`` sets them up:
    the ``[trainer]`` settings and the ``[rollout]`` plan of this installation. The trainer
    is imported (and its settings read) on the first run, not when the dashboard is mounted
    in each gateway worker (~0.3 s of its start)."""
    if importlib.util.find_spec("trainer") is None:
        return None

    def run(model: str) -> Any:
        from trainer import TrainerSettings, context, retrain
        from trainer.promotion import RolloutPlan

        settings = TrainerSettings.from_mapping(where.section("trainer"))
        plan = RolloutPlan.from_mapping(where.section("rollout"))
        ctx = context(registry, logs=where.logs, settings=settings, plan=plan)
        return retrain(model, ctx=ctx)

    return run


def mount_dashboard(app: Litestar, where: Locations, *, registry: Any = None) -> str | None:
    """Serve the dashboard inside ``app`` (the gateway's Litestar app) under
    ``[dashboard] mount_path``; returns that path, or None when ``enabled = false``."""
    from dashboard import DashboardSettings, dashboard_router
    from registry import Registry

    settings = DashboardSettings.from_mapping(where.section("dashboard"))
    if not settings.enabled:
        return None
    registry = registry or Registry(where.registry)
    router, runs = dashboard_router(
        registry,
        logs_url=where.logs,
        monitor_db=str(where.monitor_db),
        settings=settings,
        base=settings.mount_path,
        retrain=_retrain(where, registry),
    )
    app.register(router)
    app.on_shutdown.append(lambda: runs.join(30.0))
    return settings.mount_path


def mount_from_env(app: Litestar) -> str | None:
    """``mount_dashboard`` in a gateway worker of ``mlgate serve``: the installation is the
    one ``serve`` resolved (``MLGATE_HOME``, ``MLGATE_REGISTRY``, ``MLGATE_LOGS``)."""
    from mlgate.settings import resolve

    return mount_dashboard(app, resolve())
