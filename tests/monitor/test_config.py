"""``[monitor]`` settings: time units spelled ``_s``, the old ``_seconds`` names still read."""

from __future__ import annotations

import pytest

from monitor import MonitorConfig, MonitorConfigError


def test_old_seconds_names_are_deprecated_aliases_in_toml_and_environment() -> None:
    with pytest.warns(DeprecationWarning, match="renamed to 'interval_s'"):
        cfg = MonitorConfig.from_section({"interval_seconds": 7, "window_s": 60}, environ={})
    assert (cfg.interval_s, cfg.window_s) == (7.0, 60.0)
    with pytest.warns(DeprecationWarning, match="MLGATE_MONITOR_COOLDOWN_SECONDS"):
        cfg = MonitorConfig.from_section(
            {"cooldown_s": 10}, environ={"MLGATE_MONITOR_COOLDOWN_SECONDS": "120"}
        )
    assert cfg.cooldown_s == 120.0  # the environment wins over the file


def test_environment_overrides_with_typed_values_and_clear_errors() -> None:
    env = {
        "MLGATE_MONITOR_WINDOW_ROWS": "250",
        "MLGATE_MONITOR_RELEASE_BETWEEN_PASSES": "false",
        "MLGATE_MONITOR_DUCKDB_MEMORY_LIMIT": "128MB",
        "MLGATE_MONITOR_METRICS_PORT": "9100",  # the CLI's, not a [monitor] setting
    }
    cfg = MonitorConfig.from_section({"window_rows": 10}, environ=env)
    assert (cfg.window_rows, cfg.release_between_passes) == (250, False)
    assert cfg.duckdb_memory_limit == "128MB"
    with pytest.raises(MonitorConfigError, match="window_rowz: unknown setting"):
        MonitorConfig.from_section({"window_rowz": 5}, environ={})
    with pytest.raises(MonitorConfigError, match="expected a number"):
        MonitorConfig.from_section({}, environ={"MLGATE_MONITOR_PSI_THRESHOLD": "high"})
