"""Bad data is recorded, counted and reported; it never crashes the monitor or stops others."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from prometheus_client import generate_latest

from monitor import build_report
from registry import Registry, logschema
from tests.monitor.conftest import T0_US, Logs, fit_classifier


def _metric(m: Any, name: str, **labels: str) -> float:
    value = m.collector_registry.get_sample_value(name, labels)
    return float(value or 0.0)


def test_bad_files_and_schemas_are_recorded_and_others_still_processed(
    registry: Registry, logs: Logs, make_monitor: Any
) -> None:
    est, ref = fit_classifier(d=4)
    good = registry.register("good", est, reference=ref)
    bad = registry.register("bad", est, reference=ref)
    rng = np.random.default_rng(0)
    logs.predictions(good, rng.normal(size=(1000, 4)), estimator=est)
    folder = logs.root / logschema.PREDICTIONS / "model=bad" / "date=2025-11-24"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "w9-000001.parquet").write_bytes(b"PAR1 this is not parquet at all")
    (folder / "notes.txt").write_text("hello")
    pl.DataFrame({"a": [1, 2], "b": ["x", "y"]}).write_parquet(folder / "w9-000002.parquet")
    logs.predictions(
        bad, rng.normal(size=(300, 4)), estimator=est, drop=[logschema.feature_column("f02")]
    )
    logs.predictions(bad, rng.normal(size=(200, 4)), estimator=est, version=7)  # unknown
    unknown_dir = logs.root / logschema.PREDICTIONS / "model=ghost" / "date=2025-11-24"
    unknown_dir.mkdir(parents=True)
    pl.DataFrame({"x": [1]}).write_parquet(unknown_dir / "w1-000001.parquet")

    m = make_monitor()
    result = m.run_once()
    assert result.windows == 1  # the good model's window was still computed
    kinds = {p["kind"] for p in m.store.problems()}
    assert {
        "corrupt_segment",
        "foreign_file",
        "foreign_segment",
        "rows_skipped",
        "unknown_model",
    } <= kinds
    details = " ".join(p["detail"] for p in m.store.problems())
    assert "missing ['in_f02']" in details and "version 7" in details
    assert _metric(m, "mlgate_monitor_problems_total", kind="corrupt_segment") == 1
    doc = build_report(m.store, "bad")
    assert doc["window"] is None and "no complete window" in doc["note"]
    assert doc["problems"]["by_kind"]["corrupt_segment"] == 1
    # a second pass does not re-read or re-report the same bad files
    again = m.run_once()
    assert again.problems == 0 and again.segments == 0
    assert build_report(m.store, "good")["window"]["rows"] == 1000


def test_version_without_reference_still_gets_performance(
    registry: Registry, logs: Logs, make_monitor: Any
) -> None:
    est, _ref = fit_classifier(d=4)
    mv = registry.register("noref", est)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1000, 4))
    ids = [f"n{i}" for i in range(1000)]
    logs.predictions(mv, x, estimator=est, request_ids=ids)
    logs.feedback("noref", ids, est.predict(x.astype(np.float32)).tolist())
    m = make_monitor()
    m.run_once()
    m.run_once()
    assert any(p["kind"] == "no_reference" for p in m.store.problems())
    doc = build_report(m.store, "noref")
    assert doc["window"]["rows"] == 1000 and doc["features"] == []
    assert doc["performance"]["accuracy"] == 1.0


def test_all_nan_and_constant_features_are_reported_not_fatal(
    registry: Registry, logs: Logs, make_monitor: Any
) -> None:
    est, ref = fit_classifier(d=4)
    ref = ref.with_columns(pl.lit(5.0).alias("f03"))  # zero-variance reference column
    mv = registry.register("odd", est, reference=ref)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1000, 4))
    x[:, 1] = np.nan  # all-NaN in the window
    x[:, 3] = 5.0
    logs.predictions(mv, x, estimator=est)
    m = make_monitor()
    m.run_once()
    doc = build_report(m.store, "odd")
    f = {x["name"]: x for x in doc["features"]}
    assert f["f01"]["null_rate"] == 1.0 and f["f01"]["ks"] is None and f["f01"]["psi"] > 1
    assert f["f03"]["wasserstein"] == 0.0 and f["f03"]["psi"] < 0.01
    assert any(p["kind"] == "constant_reference" for p in m.store.problems())
    text = generate_latest(m.collector_registry).decode()
    assert 'mlgate_monitor_feature_drift{feature="f01",model="odd"' in text


def test_failed_requests_are_not_counted_as_drift(
    registry: Registry, logs: Logs, make_monitor: Any
) -> None:
    est, ref = fit_classifier(d=4)
    mv = registry.register("errs", est, reference=ref)
    rng = np.random.default_rng(3)
    status = np.where(np.arange(1500) % 3 == 0, 400, 200)
    logs.predictions(mv, rng.normal(size=(1500, 4)), estimator=est, status=status, start_us=T0_US)
    m = make_monitor()
    assert m.run_once().rows == 1000  # 500 failed rows left out


def test_a_failed_prediction_rows_insert_rolls_the_segment_back(
    registry: Registry, logs: Logs, make_monitor: Any, monkeypatch: Any
) -> None:
    """DuckDB failing mid-insert (here: an expression that raises; a full disk in life)
    leaves no trace of the segment, restores the insertion-order setting the insert relaxed,
    and does not brand the segment corrupt: it is read again, whole, on the next pass."""
    from monitor.ingest import predictions as ingest

    est, ref = fit_classifier(d=4)
    mv = registry.register("flaky", est, reference=ref)
    logs.predictions(mv, np.random.default_rng(14).normal(size=(1500, 4)), estimator=est)
    real = ingest._prediction_sql
    monkeypatch.setattr(ingest, "_prediction_sql", lambda ctx, present: "error('disk on fire')")
    m = make_monitor()
    first = m.run_once()
    assert first.segments == 0 and first.problems == 1
    ((kind, detail),) = [(p["kind"], p["detail"]) for p in m.store.problems()]
    assert kind == "segment_failed" and "disk on fire" in detail and "read again" in detail
    con = m.store.con
    assert con.execute("SELECT current_setting('preserve_insertion_order')").fetchone() == (True,)
    assert con.execute("SELECT count(*) FROM windows").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM prediction_rows").fetchone() == (0,)
    monkeypatch.setattr(ingest, "_prediction_sql", real)
    again = m.run_once()
    assert again.rows == 1500 and again.windows == 1
    rows = m.store.con.execute("SELECT count(*) FROM prediction_rows").fetchone()
    assert rows == (1500,)
    assert m.store.problems() == []  # read after all: no longer listed as a problem
