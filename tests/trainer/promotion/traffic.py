"""Simulated gateway traffic written as real log segments (``registry.logschema`` columns):
what a rollout controller reads, with timestamps on a stepped clock."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from registry import logschema
from registry.model import Route

CLASSES = ("a", "b", "c")
_SEQ = itertools.count()


@dataclass
class Model:
    """How a simulated version behaves: accuracy, 5xx share and latency in ms."""

    accuracy: float = 0.9
    error_rate: float = 0.0
    latency_ms: float = 1.0


@dataclass
class Traffic:
    logs: Path
    model: str
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(7))
    labels: bool = True

    def run(
        self,
        route: Route,
        start: datetime,
        seconds: float,
        rate: float,
        behaviour: dict[int, Model],
    ) -> int:
        """``rate`` requests per second for ``seconds`` from ``start`` under ``route``; each
        routed version behaves as ``behaviour`` says. Returns the requests written."""
        n = int(round(seconds * rate))
        if n == 0:
            return 0
        rows: list[dict[str, Any]] = []
        feedback: list[dict[str, Any]] = []
        for i in range(n):
            ts = start + timedelta(seconds=seconds * (i + 0.5) / n)
            rid = f"r{next(_SEQ):09d}"
            truth = CLASSES[int(self.rng.integers(len(CLASSES)))]
            canary = route.canary
            on_canary = canary is not None and self.rng.random() * 100 < canary.weight
            primary = canary.version if on_canary and canary else route.champion
            assert primary is not None
            rows.append(self._row(rid, primary, "canary" if on_canary else "champion", ts,
                                  truth, behaviour[primary]))  # fmt: skip
            for shadow in route.shadows:
                if shadow.version != primary and self.rng.random() * 100 < shadow.percent:
                    rows.append(self._row(rid, shadow.version, "shadow", ts, truth,
                                          behaviour[shadow.version]))  # fmt: skip
            if self.labels:
                label = {"label": truth, "label_value": None}
                feedback.append({"ts": ts + timedelta(seconds=1), "request_id": rid,
                                 "model": self.model, **label})  # fmt: skip
        self._write(logschema.PREDICTIONS, rows, start)
        if feedback:
            self._write(logschema.FEEDBACK, feedback, start)
        return n

    def _row(
        self, rid: str, version: int, route: str, ts: datetime, truth: str, m: Model
    ) -> dict[str, Any]:
        failed = self.rng.random() < m.error_rate
        if self.rng.random() < m.accuracy:
            pred = truth
        else:
            pred = CLASSES[(CLASSES.index(truth) + 1 + int(self.rng.integers(2))) % 3]
        latency = m.latency_ms * (0.8 + 0.4 * self.rng.random())
        return {
            "ts": ts, "request_id": rid, "model": self.model, "version": version,
            "route": route, "in_x": None if failed else 1.0,
            "prediction": None if failed else pred, "latency_us": int(latency * 1000),
            "batch_rows": 1, "status": 500 if failed else 200,
        }  # fmt: skip

    def _write(self, kind: str, rows: list[dict[str, Any]], start: datetime) -> None:
        day = start.date().isoformat()
        directory = Path(logschema.segment_dir(str(self.logs), kind, self.model, day))
        directory.mkdir(parents=True, exist_ok=True)
        schema: dict[str, Any] = {"ts": pl.Datetime("us", "UTC")}
        if kind == logschema.PREDICTIONS:
            schema.update(version=pl.Int64, latency_us=pl.Int64, batch_rows=pl.Int64,
                          status=pl.Int64, prediction=pl.String, in_x=pl.Float64)  # fmt: skip
        else:
            schema.update(label=pl.String, label_value=pl.Float64)
        frame = pl.DataFrame(rows, schema_overrides=schema)
        name = f"w1-{next(_SEQ):09d}.parquet"
        tmp = directory / f".{name}.tmp"
        frame.write_parquet(tmp)
        tmp.rename(directory / name)
