"""Fixtures of the trainer's tests: a registry with a champion, and a log store of real
Parquet segments in the gateway's layout (``registry.logschema``) with drifted traffic."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LogisticRegression

from registry import Registry
from registry.logschema import FEEDBACK, PREDICTIONS, feature_column, segment_dir
from trainer import TrainerSettings
from trainer.run import RunContext

FEATURES = ["x0", "x1", "x2", "x3"]
MODEL = "churn"


def concept(X: np.ndarray, *, drifted: bool) -> np.ndarray:
    """The label: x0 + x1 > 0 before the drift, x0 - x1 > 0 after it."""
    return ((X[:, 0] - X[:, 1] > 0) if drifted else (X[:, 0] + X[:, 1] > 0)).astype(np.int64)


def rows(n: int, *, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, len(FEATURES)))


@dataclass
class World:
    registry: Registry
    logs: Path
    root: Path

    def ctx(self, **settings: object) -> RunContext:
        base = {"rollout": False, "lease_s": 30.0, "bootstrap_rounds": 100}
        return RunContext(
            registry=self.registry,
            logs_url=str(self.logs),
            settings=TrainerSettings.from_mapping({**base, **settings}),
        )


def champion(reg: Registry, *, recipe: str | None = None) -> None:
    X = rows(2000, seed=1)
    y = concept(X, drifted=False)
    model = LogisticRegression().fit(X.astype(np.float32), y)
    ref = pl.DataFrame(X, schema=FEATURES).with_columns(pl.Series("label", y))
    reg.register(MODEL, model, reference=ref, recipe=recipe)


def write_traffic(
    logs: Path,
    X: np.ndarray,
    y: np.ndarray | list[object],
    *,
    model: str = MODEL,
    version: int = 1,
    start: datetime | None = None,
    prefix: str = "req",
    label_col: list[object] | None = None,
    features: list[str] = FEATURES,
    traffic: list[str | None] | None = None,
) -> None:
    """One prediction and one feedback segment, as the gateway writes them."""
    start = start or datetime(2026, 12, 1, tzinfo=UTC)
    n = len(X)
    ts = [start + timedelta(seconds=i) for i in range(n)]
    ids = [f"{prefix}-{i}" for i in range(n)]
    pred = pl.DataFrame(
        {
            "ts": pl.Series(ts, dtype=pl.Datetime("us", "UTC")),
            "request_id": ids,
            "model": [model] * n,
            "version": [version] * n,
            "route": ["champion"] * n,
            **{feature_column(f): X[:, i].astype(np.float64) for i, f in enumerate(features)},
            "prediction": ["0"] * n,
            "latency_us": [100] * n,
            "batch_rows": [1] * n,
            "status": [200] * n,
        }
    )
    if traffic is not None:
        pred = pred.with_columns(pl.Series("traffic", traffic, dtype=pl.String))
    labels = label_col if label_col is not None else [str(v) for v in list(y)]
    fb = pl.DataFrame(
        {
            "ts": pl.Series([t + timedelta(seconds=5) for t in ts], dtype=pl.Datetime("us", "UTC")),
            "request_id": ids,
            "model": [model] * n,
            "label": [str(v) for v in labels],
            "label_value": [_num(v) for v in labels],
        }
    )
    day = start.strftime("%Y-%m-%d")
    for kind, frame in ((PREDICTIONS, pred), (FEEDBACK, fb)):
        folder = Path(segment_dir(str(logs), kind, model, day))
        folder.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(folder / f"test-{prefix}.parquet")


def _num(v: object) -> float | None:
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


@pytest.fixture
def world(tmp_path: Path) -> World:
    reg = Registry(str(tmp_path / "registry"))
    champion(reg)
    return World(reg, tmp_path / "logs", tmp_path)


def drifted_traffic(world: World, n: int = 1500, *, seed: int = 7) -> None:
    X = rows(n, seed=seed)
    write_traffic(world.logs, X, concept(X, drifted=True))
