"""Fixtures for the monitor: real registries with real models, and a log store written in
the gateway's layout (``registry/logschema.py``)."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from monitor import Monitor, MonitorConfig
from monitor.clock import ManualClock
from registry import Registry, logschema

T0_US = 1_764_000_000_000_000  # 2025-11-24 UTC, in microseconds


@dataclass
class Logs:
    """Writes prediction and feedback segments like the gateway's log writer."""

    root: Path
    counter: itertools.count = itertools.count(1)  # type: ignore[type-arg]

    def __post_init__(self) -> None:
        self.counter = itertools.count(1)

    def _target(self, kind: str, model: str, ts_us: int, worker: str) -> Path:
        day = datetime.fromtimestamp(ts_us / 1e6, UTC).strftime("%Y-%m-%d")
        folder = Path(logschema.segment_dir(str(self.root), kind, model, day))
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{worker}-{next(self.counter):06d}.parquet"

    def predictions(
        self,
        mv: Any,
        x: np.ndarray,
        *,
        estimator: Any = None,
        route: str = "champion",
        start_us: int = T0_US,
        step_us: int = 1000,
        worker: str = "w1",
        request_ids: list[str] | None = None,
        status: np.ndarray | None = None,
        drop: list[str] = (),  # type: ignore[assignment]
        version: int | None = None,
        traffic: list[str | None] | None = None,
    ) -> Path:
        n = len(x)
        ts = start_us + np.arange(n, dtype=np.int64) * step_us
        rid = request_ids or [f"{worker}-{start_us}-{i}" for i in range(n)]
        cols: dict[str, Any] = {
            "ts": pl.Series(ts).cast(pl.Datetime("us", "UTC")),
            "request_id": rid,
            "model": [mv.name] * n,
            "version": pl.Series([version or mv.version] * n, dtype=pl.Int64),
            "route": [route] * n,
        }
        for j, f in enumerate(mv.input_schema.features):
            if f.categories is not None:
                values = [None if v is None else str(v) for v in x[:, j]]
                cols[logschema.feature_column(f.name)] = pl.Series(values, dtype=pl.String)
            else:
                column = np.asarray(x[:, j], dtype=np.float64)
                cols[logschema.feature_column(f.name)] = pl.Series(column, dtype=pl.Float64)
        model_x = x if x.dtype == object else np.nan_to_num(x).astype(np.float32)
        if estimator is not None and mv.output_schema.task == "classification":
            proba = estimator.predict_proba(model_x)
            classes = [str(c) for c in mv.output_schema.classes]
            cols["prediction"] = [classes[i] for i in proba.argmax(axis=1)]
            for k, c in enumerate(classes):
                cols[logschema.proba_column(c)] = proba[:, k]
        elif estimator is not None:
            cols["prediction"] = estimator.predict(model_x).astype(float)
        cols["latency_us"] = pl.Series([100] * n, dtype=pl.Int64)
        cols["batch_rows"] = pl.Series([1] * n, dtype=pl.Int64)
        cols["status"] = pl.Series(status if status is not None else [200] * n, dtype=pl.Int64)
        if traffic is not None:
            cols[logschema.TRAFFIC_COLUMN] = pl.Series(traffic, dtype=pl.String)
        frame = pl.DataFrame(cols).drop(list(drop))
        return self.write(frame, logschema.PREDICTIONS, mv.name, start_us, worker)

    def write(self, frame: pl.DataFrame, kind: str, model: str, ts_us: int, worker: str) -> Path:
        target = self._target(kind, model, ts_us, worker)
        tmp = target.with_name("." + target.name + ".tmp")
        frame.write_parquet(tmp, row_group_size=max(1, frame.height))
        os.replace(tmp, target)
        return target

    def feedback(
        self,
        model: str,
        request_ids: list[str],
        labels: list[Any],
        *,
        ts_us: int = T0_US,
        worker: str = "w1",
    ) -> Path:
        n = len(request_ids)
        frame = pl.DataFrame(
            {
                "ts": pl.Series([ts_us] * n).cast(pl.Datetime("us", "UTC")),
                "request_id": request_ids,
                "model": [model] * n,
                "label": [str(v) for v in labels],
                "label_value": pl.Series(
                    [float(v) if _is_number(v) else None for v in labels], dtype=pl.Float64
                ),
            }
        )
        return self.write(frame, logschema.FEEDBACK, model, ts_us, worker)


def _is_number(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


@pytest.fixture
def logs(tmp_path: Path) -> Logs:
    return Logs(tmp_path / "logs")


@pytest.fixture
def registry(local_registry_url: str) -> Registry:
    return Registry(local_registry_url)


def feature_names(d: int) -> list[str]:
    return [f"f{j:02d}" for j in range(d)]


def fit_classifier(d: int = 4, rows: int = 4000, seed: int = 0) -> tuple[Any, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, d))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=rows) > 0).astype(int)
    est = LogisticRegression().fit(x.astype(np.float32), y)
    ref = pl.DataFrame({n: x[:, j] for j, n in enumerate(feature_names(d))})
    return est, ref


def fit_regressor(d: int = 3, rows: int = 3000, seed: int = 1) -> tuple[Any, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, d))
    y = x @ np.arange(1, d + 1) + rng.normal(scale=0.1, size=rows)
    est = LinearRegression().fit(x.astype(np.float32), y)
    ref = pl.DataFrame({n: x[:, j] for j, n in enumerate(feature_names(d))})
    return est, ref


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_764_000_000.0)


@pytest.fixture
def make_monitor(registry: Registry, logs: Logs, tmp_path: Path, clock: ManualClock) -> Any:
    made: list[Monitor] = []

    def make(config: MonitorConfig | None = None, **kwargs: Any) -> Monitor:
        m = Monitor(
            registry,
            str(logs.root),
            db=tmp_path / "monitor.duckdb",
            config=config or MonitorConfig(),
            clock=kwargs.pop("clock", clock),
            **kwargs,
        )
        made.append(m)
        return m

    yield make
    for m in made:
        try:
            m.close()
        except Exception:  # noqa: BLE001 - already closed by the test
            pass
