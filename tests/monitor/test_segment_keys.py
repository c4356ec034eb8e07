"""Segments are known by their path relative to the log store and their content: a copied or
moved store is not counted again, keys of older monitors are migrated, and a column of the
wrong type is recorded as a problem."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from monitor import Monitor, MonitorConfig
from registry import Registry, logschema
from tests.monitor.conftest import T0_US, Logs, fit_classifier


def counted_rows(m: Monitor) -> int:
    row = m.store.con.execute(
        "SELECT sum(cum[-1] + nulls) FROM window_counts WHERE name = 'f00'"
    ).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def test_a_copied_and_moved_log_store_is_not_counted_again(
    registry: Registry, logs: Logs, tmp_path: Path, clock: Any
) -> None:
    est, ref = fit_classifier(d=4)
    mv = registry.register("churn", est, reference=ref)
    rng = np.random.default_rng(1)
    for k in range(3):
        logs.predictions(mv, rng.normal(size=(1000, 4)), estimator=est,
                         start_us=T0_US + k * 10**9)  # fmt: skip
    db = tmp_path / "monitor.duckdb"
    first = Monitor(registry, str(logs.root), db=db, config=MonitorConfig(), clock=clock)
    assert first.run_once().rows == 3000
    first.close()
    # copied (new modification times), then the original removed: the store moved
    moved = tmp_path / "elsewhere" / "logs"
    shutil.copytree(logs.root, moved, copy_function=shutil.copy)
    shutil.rmtree(logs.root)
    for path in moved.rglob("*.parquet"):
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    second = Monitor(registry, str(moved), db=db, config=MonitorConfig(), clock=clock)
    try:
        again = second.run_once()
        assert (again.rows, again.segments, again.problems) == (0, 0, 0)
        assert counted_rows(second) == 3000
        keys = [r[0] for r in second.store.con.execute("SELECT path FROM segments").fetchall()]
        assert all(k.startswith("predictions/model=churn/date=") for k in keys), keys
        # a segment really rewritten in place is still caught (and not counted twice)
        victim = next(moved.rglob("*.parquet"))
        frame = pl.read_parquet(victim)
        frame.with_columns(pl.col("latency_us") + 1).write_parquet(victim)
        changed = second.run_once()
        assert changed.rows == 0 and changed.problems == 1
        kinds = [p["kind"] for p in second.store.problems()]
        assert kinds == ["segment_changed"]
    finally:
        second.close()


def test_absolute_keys_of_an_older_monitor_are_migrated(
    registry: Registry, logs: Logs, make_monitor: Any
) -> None:
    est, ref = fit_classifier(d=4)
    mv = registry.register("churn", est, reference=ref)
    logs.predictions(mv, np.random.default_rng(2).normal(size=(1500, 4)), estimator=est)
    m = make_monitor()
    assert m.run_once().rows == 1500
    # as a monitor before relative keys stored them: the absolute path, no fingerprint
    m.store.con.execute(
        "UPDATE segments SET fingerprint = NULL"
    )  # the key itself is rewritten through a fresh row, as the old monitor wrote it
    old = m.store.con.execute("SELECT * FROM segments").fetchall()
    m.store.con.execute("DELETE FROM segments")
    for row in old:
        absolute = str(logs.root / row[0])
        m.store.con.execute(
            "INSERT INTO segments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [absolute, *row[1:]]
        )
    m.close()
    again = make_monitor()
    assert again.run_once().rows == 0
    assert counted_rows(again) == 1500
    keys = [r[0] for r in again.store.con.execute("SELECT path FROM segments").fetchall()]
    assert len(keys) == 1 and keys[0].startswith("predictions/model=churn/")


def test_a_column_of_the_wrong_type_is_a_problem(
    registry: Registry, logs: Logs, make_monitor: Any
) -> None:
    est, ref = fit_classifier(d=4)
    mv = registry.register("churn", est, reference=ref)
    path = logs.predictions(mv, np.random.default_rng(3).normal(size=(1000, 4)), estimator=est)
    column = logschema.feature_column("f01")
    frame = pl.read_parquet(path)
    frame.with_columns(pl.lit("n/a").alias(column)).write_parquet(path)
    m = make_monitor()
    result = m.run_once()
    assert result.rows == 1000
    problems = [(p["kind"], p["detail"]) for p in m.store.problems()]
    assert len(problems) == 1
    kind, detail = problems[0]
    assert kind == "wrong_column_type"
    assert f"column '{column}': expected a number, got string" in detail
