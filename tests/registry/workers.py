"""Functions run in separate processes by the concurrency tests (importable by spawn)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from registry import Canary, Registry, Route


def warm_up() -> None:
    """Pool initializer: pay the imports before the race starts."""
    import onnx  # noqa: F401


def _wait_for_go(sync_dir: str, index: int) -> None:
    folder = Path(sync_dir)
    (folder / f"ready-{index}").write_text(str(os.getpid()))
    deadline = time.monotonic() + 120
    while not (folder / "go").exists():
        if time.monotonic() > deadline:
            raise TimeoutError("no go signal")
        time.sleep(0.002)


def register_many(
    url: str, name: str, model_path: str, count: int, sync_dir: str, index: int
) -> tuple[int, list[int]]:
    """Register ``count`` versions as fast as possible; returns (pid, versions got)."""
    reg = Registry(url)
    _wait_for_go(sync_dir, index)
    got = [
        reg.register(name, model_path, tags={"writer": str(index)}).version for _ in range(count)
    ]
    return os.getpid(), got


def _bump(route: Route) -> Route:
    assert route.canary is not None
    canary = Canary(version=route.canary.version, weight=route.canary.weight + 1)
    return Route(**{**_fields(route), "canary": canary})


def _fields(route: Route) -> dict[str, object]:
    return {f: getattr(route, f) for f in route.__struct_fields__}


def bump_canary(url: str, name: str, count: int, sync_dir: str, index: int) -> tuple[int, int]:
    """Increment the canary weight by 1, ``count`` times; returns (pid, increments done)."""
    reg = Registry(url)
    _wait_for_go(sync_dir, index)
    for _ in range(count):
        reg.update_route(name, _bump, kind="canary", actor=f"writer-{index}")
    return os.getpid(), count
