"""Lineage fields of a manifest: estimator parameters as JSON and the code version."""

from __future__ import annotations

import math
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from registry.schema import to_python


def json_safe(value: Any, *, depth: int = 0) -> Any:
    """A JSON-encodable rendering of a parameter value (estimators become their class name).

    >>> json_safe({"C": 1.0, "solver": "lbfgs", "w": None, "inf": float("inf")})
    {'C': 1.0, 'solver': 'lbfgs', 'w': None, 'inf': 'inf'}
    """
    value = to_python(value) if not isinstance(value, (list, tuple, dict)) else value
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth < 3 and isinstance(value, (list, tuple)):
        return [json_safe(v, depth=depth + 1) for v in value]
    if depth < 3 and isinstance(value, dict):
        return {str(k): json_safe(v, depth=depth + 1) for k, v in value.items()}
    if hasattr(value, "get_params"):
        return type(value).__name__
    if callable(value):
        return getattr(value, "__qualname__", None) or type(value).__name__
    return repr(value)[:200]


def estimator_params(estimator: Any) -> dict[str, Any]:
    """``get_params(deep=False)`` made JSON-safe; {} for anything without it."""
    get_params = getattr(estimator, "get_params", None)
    if get_params is None:
        return {}
    params: dict[str, Any] = get_params(deep=False)
    return {str(k): json_safe(v) for k, v in params.items()}


def code_version() -> str:
    """``mlgate <version>``, plus ``+g<sha>`` (and ``.dirty``) when run from a git checkout."""
    try:
        version = metadata.version("mlgate")
    except metadata.PackageNotFoundError:
        version = "unknown"
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return f"mlgate {version}"
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return f"mlgate {version}"
    return f"mlgate {version}+g{sha}" if sha else f"mlgate {version}"
