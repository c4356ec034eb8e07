"""The web dashboard: models, rollouts, drift, retraining and the audit trail, with actions.

Reads the registry, the prediction log and the monitor's state (never the gateway), so it is
served by ``mlgate serve`` (at ``/ui``) and on its own by ``mlgate ui`` alike. Public surface::

    create_app(registry, logs_url=..., monitor_db=..., settings=..., base="") -> Litestar
    dashboard_router(registry, ..., base="/ui") -> (Router, runs)  # to mount in another app
    DashboardSettings.from_mapping(table)   # the [dashboard] table of mlgate.toml
"""

from dashboard.app import create_app, dashboard_router
from dashboard.settings import DashboardSettings, DashboardSettingsError

__all__ = ["DashboardSettings", "DashboardSettingsError", "create_app", "dashboard_router"]
