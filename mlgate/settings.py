"""Where things live: home, registry and log store URLs, and ``mlgate.toml``.

Precedence, highest first: command-line flag, environment variable, ``mlgate.toml`` in the
working directory (or the file ``MLGATE_CONFIG`` names, as in the container image), built-in
default. ``MLGATE_HOME`` (default ``./.mlgate``) holds the
registry (``<home>/registry``), the log store (``<home>/logs``) and the monitor's state
(``<home>/monitor.duckdb``) unless they are set apart.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_HOME = "./.mlgate"
CONFIG_FILE = "mlgate.toml"


class ConfigError(ValueError):
    """``mlgate.toml`` or an environment variable holds something we cannot use."""


def to_url(location: str) -> str:
    """Turn a bare path into a ``file://`` URL; leave URLs (``s3://``, ``file://``) alone.

    >>> to_url("s3://bucket/prefix")
    's3://bucket/prefix'
    """
    if "://" in location:
        return location
    return "file://" + str(Path(location).expanduser().resolve())


def load_config(path: Path | None = None) -> dict[str, Any]:
    """Read ``mlgate.toml``: ``path``, else the file ``MLGATE_CONFIG`` names, else the one in
    the working directory. A missing file is an empty configuration."""
    path = path or Path(os.environ.get("MLGATE_CONFIG") or Path.cwd() / CONFIG_FILE)
    if not path.exists():
        return {}
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc}") from exc


@dataclass(frozen=True)
class Locations:
    """Resolved storage URLs for one process."""

    home: Path
    registry: str
    logs: str
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def monitor_db(self) -> Path:
        return self.home / "monitor.duckdb"

    def section(self, name: str) -> dict[str, Any]:
        """One table of ``mlgate.toml`` (``[gateway]``, ``[monitor]`` …), empty when absent."""
        value = self.config.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"mlgate.toml: [{name}] must be a table, got {type(value).__name__}")
        return value


def resolve(
    *,
    home: str | None = None,
    registry: str | None = None,
    logs: str | None = None,
    config_path: Path | None = None,
) -> Locations:
    """Resolve the home, registry and log URLs from flags, environment and ``mlgate.toml``."""
    config = load_config(config_path)
    storage = config.get("storage", {}) if isinstance(config.get("storage"), dict) else {}
    home_dir = Path(
        home or os.environ.get("MLGATE_HOME") or storage.get("home") or DEFAULT_HOME
    ).expanduser()
    registry_url = registry or os.environ.get("MLGATE_REGISTRY") or storage.get("registry")
    logs_url = logs or os.environ.get("MLGATE_LOGS") or storage.get("logs")
    return Locations(
        home=home_dir.resolve(),
        registry=to_url(registry_url or str(home_dir / "registry")),
        logs=to_url(logs_url or str(home_dir / "logs")),
        config=config,
    )
