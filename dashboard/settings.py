"""Settings of the dashboard: the ``[dashboard]`` table of ``mlgate.toml``.

Every limit is here with its default. Tokens default to the environment: the admin token to
``MLGATE_ADMIN_TOKEN`` (the same one the gateway's admin API takes), the read token to
``MLGATE_READ_TOKEN``. With no read token, reading is open; with no admin token, actions are
refused (403).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from collections.abc import Mapping


class DashboardSettingsError(ValueError):
    """A ``[dashboard]`` setting has a value we cannot use."""


class DashboardSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the dashboard reads and how much of it.

    ``traffic_window_s``: the span of prediction log behind request rate, error rate and p99
    (and the per-route table of a model); ``series_buckets``: points of the traffic/latency
    charts; ``max_windows``: monitor windows on the drift heat map and series (the most recent);
    ``page_windows``: windows the drift API sends in full (older ones page by page);
    ``heat_columns``: columns of the heat map, which always spans the ``max_windows`` latest
    windows (neighbours merged, the worst figure kept); ``max_events``: audit-trail lines
    shown per page; ``cache_s``: how long a computed figure is
    reused (the pages refresh every ``refresh_s``); ``monitor_wait_s``: how long a read waits
    for the monitor to release its DuckDB file; ``gateway_max_age_s``: a gateway that has not
    reported for longer is not counted as live.
    """

    admin_token: str | None = None  # actions need it (default: MLGATE_ADMIN_TOKEN); None: 403
    read_token: str | None = None  # reading needs it (default: MLGATE_READ_TOKEN); None: open
    traffic_window_s: float = 300.0  # log span behind request rate, error rate and p99
    series_window_s: float = 3600.0  # span of the traffic and latency charts
    series_buckets: int = 60  # points of the traffic and latency charts
    max_windows: int = 1000  # monitor windows on the drift heat map and series (the latest)
    page_windows: int = 50  # windows the drift API sends in full per page (?limit=, ?before=)
    heat_columns: int = 80  # the heat map's columns: past them, neighbouring windows merge
    max_events: int = 200  # audit-trail lines shown per page (and outbox messages read)
    cache_s: float = 2.0  # how long a computed figure is reused
    refresh_s: float = 10.0  # how often the pages refresh themselves
    monitor_wait_s: float = 2.0  # how long a read waits for the monitor to release its file
    gateway_max_age_s: float = 30.0  # a gateway silent for longer is not counted as live
    mount_path: str = "/ui"  # where `mlgate serve` serves the dashboard
    enabled: bool = True  # served by `mlgate serve` under mount_path

    def __post_init__(self) -> None:
        for name in ("traffic_window_s", "series_window_s", "refresh_s", "gateway_max_age_s"):
            if not getattr(self, name) > 0:
                raise DashboardSettingsError(
                    f"dashboard.{name}: expected a positive number of seconds, "
                    f"got {getattr(self, name)!r}"
                )
        for name in ("cache_s", "monitor_wait_s"):
            if getattr(self, name) < 0:
                raise DashboardSettingsError(
                    f"dashboard.{name}: expected seconds >= 0, got {getattr(self, name)!r}"
                )
        for name in ("series_buckets", "max_windows", "max_events", "page_windows", "heat_columns"):
            value = getattr(self, name)
            if not 1 <= value <= 100_000:
                raise DashboardSettingsError(
                    f"dashboard.{name}: expected an integer from 1 to 100000, got {value!r}"
                )
        if not self.mount_path.startswith("/") or self.mount_path == "/":
            raise DashboardSettingsError(
                f"dashboard.mount_path: expected a path such as /ui, got {self.mount_path!r}"
            )

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any] | None = None, *, env: Mapping[str, str] | None = None
    ) -> DashboardSettings:
        """Build from a ``[dashboard]`` table; tokens default to the environment variables."""
        values = dict(data or {})
        env = os.environ if env is None else env
        if "admin_token" not in values and env.get("MLGATE_ADMIN_TOKEN"):
            values["admin_token"] = env["MLGATE_ADMIN_TOKEN"]
        if "read_token" not in values and env.get("MLGATE_READ_TOKEN"):
            values["read_token"] = env["MLGATE_READ_TOKEN"]
        try:
            return msgspec.convert(values, cls)
        except msgspec.ValidationError as exc:
            raise DashboardSettingsError(f"[dashboard] in mlgate.toml: {exc}") from exc
