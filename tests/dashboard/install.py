"""A real installation for the dashboard's tests: a registry with a champion, a canary and a
shadow, prediction segments in the gateway's layout (healthy, then drifted traffic, server
errors on the canary), feedback, a monitor pass with one webhook receiver that works and one
that is down, and retraining-run events in the audit trail."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.linear_model import LinearRegression, LogisticRegression

from monitor import Monitor, MonitorConfig, WebhookEndpoint
from registry import Registry, logschema, rollout

FEATURES = ["f00", "f01", "f02", "f03"]
SHIFT = 2.5  # added to f00 and f01 in the drifted half


@dataclass
class Install:
    home: Path
    registry: Registry
    now_us: int
    champion_rows: int
    canary_rows: int
    canary_errors: int

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def monitor_db(self) -> Path:
        return self.home / "monitor.duckdb"


_seq = itertools.count(1)


def write_segment(root: Path, kind: str, model: str, frame: pl.DataFrame, ts_us: int) -> Path:
    day = datetime.fromtimestamp(ts_us / 1e6, UTC).strftime("%Y-%m-%d")
    folder = Path(logschema.segment_dir(str(root), kind, model, day))
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"w1-{next(_seq):06d}.parquet"
    tmp = target.with_name("." + target.name + ".tmp")
    frame.write_parquet(tmp)
    os.replace(tmp, target)
    return target


def predictions(
    mv: Any,
    est: Any,
    x: np.ndarray,
    *,
    route: str,
    start_us: int,
    step_us: int,
    ids: list[str],
    status: np.ndarray | None = None,
    latency_us: int = 800,
) -> pl.DataFrame:
    n = len(x)
    cols: dict[str, Any] = {
        "ts": pl.Series(start_us + np.arange(n, dtype=np.int64) * step_us).cast(
            pl.Datetime("us", "UTC")
        ),
        "request_id": ids,
        "model": [mv.name] * n,
        "version": pl.Series([mv.version] * n, dtype=pl.Int64),
        "route": [route] * n,
    }
    for j, f in enumerate(FEATURES):
        cols[logschema.feature_column(f)] = pl.Series(x[:, j], dtype=pl.Float64)
    if mv.output_schema.task == "classification":
        proba = est.predict_proba(x.astype(np.float32))
        classes = [str(c) for c in mv.output_schema.classes]
        cols["prediction"] = [classes[i] for i in proba.argmax(axis=1)]
        for k, c in enumerate(classes):
            cols[logschema.proba_column(c)] = proba[:, k]
    else:
        cols["prediction"] = est.predict(x.astype(np.float32)).astype(float)
    cols["latency_us"] = pl.Series(latency_us + np.arange(n) % 400, dtype=pl.Int64)
    cols["batch_rows"] = pl.Series([1] * n, dtype=pl.Int64)
    cols["status"] = pl.Series(status if status is not None else [200] * n, dtype=pl.Int64)
    return pl.DataFrame(cols)


def build(home: Path, *, webhook_ok: str, webhook_down: str) -> Install:
    """The installation under ``home`` (registry, logs, monitor.duckdb)."""
    rng = np.random.default_rng(0)
    reg = Registry("file://" + str(home / "registry"))
    x_ref = rng.normal(size=(3000, 4))
    y = (x_ref[:, 0] + 0.5 * x_ref[:, 1] + rng.normal(scale=0.5, size=3000) > 0).astype(int)
    ref = pl.DataFrame({f: x_ref[:, j] for j, f in enumerate(FEATURES)})
    ests = [LogisticRegression(C=c).fit(x_ref.astype(np.float32), y) for c in (1.0, 0.1, 0.01)]
    v1 = reg.register("churn", ests[0], reference=ref, metrics={"accuracy": 0.81, "f1": 0.8})
    v2 = reg.register(
        "churn", ests[1], reference=ref, metrics={"accuracy": 0.84, "f1": 0.83},
        parent_version=1, trigger="drift",
    )  # fmt: skip
    v3 = reg.register(
        "churn", ests[2], reference=ref, metrics={"accuracy": 0.79, "f1": 0.77},
        parent_version=2, trigger="schedule",
    )  # fmt: skip
    rollout.start_rollout(reg, "churn", 2, weight=20.0, steps=[20.0, 50.0, 100.0], actor="cli")
    rollout.set_shadow(reg, "churn", 3, percent=100.0, actor="cli")
    yr = x_ref @ np.array([1.0, 2.0, 0.0, -1.0])
    price = reg.register(
        "price", LinearRegression().fit(x_ref.astype(np.float32), yr), reference=ref
    )

    now_us = int(datetime.now(UTC).timestamp() * 1e6)
    logs = home / "logs"
    # champion traffic over the last ~4 minutes: 2000 like the reference, then 2000 drifted
    n = 4000
    x = rng.normal(size=(n, 4))
    x[n // 2 :, :2] += SHIFT
    start = now_us - 240_000_000
    step = 240_000_000 // n
    ids = [f"req-{i}" for i in range(n)]
    champion = predictions(v1, ests[0], x, route="champion", start_us=start, step_us=step, ids=ids)
    write_segment(logs, logschema.PREDICTIONS, "churn", champion[: n // 2], start)
    write_segment(logs, logschema.PREDICTIONS, "churn", champion[n // 2 :], start)
    # the shadow answers a copy of every champion request, under the same ids
    shadow = predictions(v3, ests[2], x, route="shadow", start_us=start, step_us=step, ids=ids)
    write_segment(logs, logschema.PREDICTIONS, "churn", shadow, start)
    # the canary: 500 requests of its own, 25 of them server errors
    m = 500
    xc = rng.normal(size=(m, 4))
    status = np.full(m, 200)
    status[:25] = 500
    canary = predictions(
        v2, ests[1], xc, route="canary", start_us=start, step_us=240_000_000 // m,
        ids=[f"can-{i}" for i in range(m)], status=status, latency_us=1500,
    )  # fmt: skip
    write_segment(logs, logschema.PREDICTIONS, "churn", canary, start)
    xp = rng.normal(size=(300, 4))
    write_segment(
        logs, logschema.PREDICTIONS, "price",
        predictions(price, LinearRegression().fit(x_ref.astype(np.float32), yr), xp,
                    route="champion", start_us=start, step_us=800_000,
                    ids=[f"p-{i}" for i in range(300)]),
        start,
    )  # fmt: skip
    # labels for the first 1000 champion requests
    labels = (x[:1000, 0] + 0.5 * x[:1000, 1] > 0).astype(int)
    feedback = pl.DataFrame(
        {
            "ts": pl.Series([now_us] * 1000).cast(pl.Datetime("us", "UTC")),
            "request_id": ids[:1000],
            "model": ["churn"] * 1000,
            "label": [str(v) for v in labels],
            "label_value": pl.Series(labels, dtype=pl.Float64),
        }
    )
    write_segment(logs, logschema.FEEDBACK, "churn", feedback, now_us)

    config = MonitorConfig(
        window_rows=500,
        min_rows=200,
        min_labels=20,
        consecutive=1,
        retry_base_s=0.01,
        webhook_timeout_s=1.0,
        webhooks=(WebhookEndpoint(url=webhook_ok), WebhookEndpoint(url=webhook_down)),
    )
    monitor = Monitor(reg, str(logs), db=home / "monitor.duckdb", config=config)
    try:
        monitor.run_once()
        monitor.run_once()  # feedback joined, deliveries retried
    finally:
        monitor.close()
    # a retraining run, as the trainer records it in the audit trail
    reg.record_event("churn", "trainer.run.started", detail={"run": "r1", "trigger": "drift"})
    reg.record_event(
        "churn", "trainer.run.finished", version=2,
        detail={"run": "r1", "decision": "registered", "metrics": {"accuracy": 0.84}},
    )  # fmt: skip
    return Install(
        home=home, registry=reg, now_us=now_us, champion_rows=n, canary_rows=m, canary_errors=25
    )
