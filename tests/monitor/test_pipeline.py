"""The monitor end to end on a real registry and real Parquet segments."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest
from sklearn import metrics as skm

from monitor import Monitor, MonitorConfig, build_report
from registry import Registry
from tests.monitor.conftest import T0_US, Logs, fit_classifier, fit_regressor


def _summaries(m: Monitor) -> list[dict[str, Any]]:
    rows = m.store.con.execute(
        "SELECT seq, version, route, rows, n_drifted, dataset_drift, drifted_features"
        " FROM summaries ORDER BY version, route, seq"
    ).fetchall()
    keys = ("seq", "version", "route", "rows", "n_drifted", "dataset_drift", "drifted")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def test_small_shift_on_three_of_32_features_is_found_in_two_windows(
    registry: Registry, logs: Logs, make_monitor: Any
) -> None:
    est, ref = fit_classifier(d=32, rows=20_000, seed=2)
    mv = registry.register("wide", est, reference=ref)
    rng = np.random.default_rng(7)
    logs.predictions(mv, rng.normal(size=(6000, 32)), estimator=est)
    shifted = rng.normal(size=(4000, 32))
    moved = [4, 17, 29]
    shifted[:, moved] += 0.3 * ref.to_numpy()[:, moved].std(axis=0)
    logs.predictions(mv, shifted, estimator=est, start_us=T0_US + 6000 * 1000)
    m = make_monitor()
    result = m.run_once()
    assert result.rows == 10_000 and result.windows == 10
    rows = _summaries(m)
    names = [f"f{j:02d}" for j in moved]
    assert all(r["drifted"] == [] for r in rows[:6])  # stationary: nothing flagged
    assert rows[6]["drifted"] == []  # first shifted window: 1 of k=2
    for r in rows[7:]:
        assert sorted(r["drifted"]) == names  # the second shifted window flags exactly those
        assert not r["dataset_drift"]  # 3/32 is below the 0.5 share
    flagged = m.store.con.execute(
        "SELECT DISTINCT name FROM results WHERE role = 'feature' AND drifted ORDER BY name"
    ).fetchall()
    assert [f[0] for f in flagged] == names  # no other feature drifted in any window


def test_exactly_once_across_restarts_and_late_segments(
    registry: Registry, logs: Logs, make_monitor: Any
) -> None:
    est, ref = fit_classifier(d=4)
    mv = registry.register("churn", est, reference=ref)
    rng = np.random.default_rng(1)
    logs.predictions(mv, rng.normal(size=(1500, 4)), estimator=est, start_us=T0_US + 10**9)
    first = make_monitor()
    assert first.run_once().rows == 1500
    first.close()
    second = make_monitor()
    again = second.run_once()
    assert again.rows == 0 and again.segments == 0 and again.windows == 0
    # a late segment (older timestamps, written later) is read once and fills the open window
    logs.predictions(mv, rng.normal(size=(700, 4)), estimator=est, start_us=T0_US, worker="w2")
    late = second.run_once()
    assert late.rows == 700 and late.windows == 1
    assert second.run_once().rows == 0
    windows = second.store.con.execute(
        "SELECT seq, rows, complete FROM windows ORDER BY seq"
    ).fetchall()
    assert windows == [(1, 1000, True), (2, 1000, True), (3, 200, False)]
    counted = second.store.con.execute(
        "SELECT name, sum(cum[-1] + nulls) FROM window_counts GROUP BY name"
    ).fetchall()
    assert {n for n, _ in counted} >= {"f00", "f03", "@score", "@prediction"}
    assert all(int(total) == 2200 for _, total in counted)  # every row counted exactly once
    paths = second.store.con.execute("SELECT count(*), count(DISTINCT path) FROM segments")
    assert paths.fetchone() == (2, 2)


def test_time_windows_take_late_rows_as_a_new_revision(
    registry: Registry, logs: Logs, make_monitor: Any
) -> None:
    est, ref = fit_classifier(d=4)
    mv = registry.register("timed", est, reference=ref)
    rng = np.random.default_rng(2)
    minute = 60_000_000
    m = make_monitor(MonitorConfig(window_s=60, lateness_s=30, min_rows=100))
    logs.predictions(
        mv, rng.normal(size=(600, 4)), estimator=est, start_us=T0_US, step_us=minute // 600
    )
    logs.predictions(
        mv, rng.normal(size=(600, 4)), estimator=est, start_us=T0_US + minute, step_us=minute // 600
    )
    logs.predictions(mv, rng.normal(size=(10, 4)), estimator=est, start_us=T0_US + 3 * minute)
    assert m.run_once().windows == 2  # minutes 0 and 1 closed by the watermark at minute 3
    logs.predictions(
        mv, rng.normal(size=(50, 4)), estimator=est, start_us=T0_US + 1000, worker="late"
    )
    assert m.run_once().windows == 1  # minute 0 recomputed with its late rows
    rows = m.store.con.execute(
        "SELECT seq, rows, revision, computed_revision FROM windows ORDER BY seq"
    ).fetchall()
    assert rows[0] == (1, 650, 2, 2)
    assert rows[1][1] == 600
    report = build_report(m.store, "timed", window="all")
    assert [w["window"]["rows"] for w in report["windows"]] == [650, 600]


def test_performance_joins_feedback_that_arrives_later(
    registry: Registry, logs: Logs, make_monitor: Any
) -> None:
    est, ref = fit_classifier(d=4)
    mv = registry.register("labels", est, reference=ref)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=2000) > 0).astype(int)
    ids = [f"r{i}" for i in range(2000)]
    logs.predictions(mv, x, estimator=est, request_ids=ids)
    m = make_monitor()
    m.run_once()
    assert build_report(m.store, "labels")["performance"] == {"labelled_rows": 0}
    logs.feedback("labels", ids[:1500], y[:1500].tolist())
    m.run_once()
    doc = build_report(m.store, "labels", window="all")
    first, second = (w["performance"] for w in doc["windows"])
    assert first["labelled_rows"] == 1000 and second["labelled_rows"] == 500
    proba = est.predict_proba(x[:1000].astype(np.float32))
    assert first["accuracy"] == pytest.approx(skm.accuracy_score(y[:1000], proba.argmax(1)))
    assert first["f1"] == pytest.approx(skm.f1_score(y[:1000], proba.argmax(1)))
    assert first["roc_auc"] == pytest.approx(skm.roc_auc_score(y[:1000], proba[:, 1]))
    assert first["log_loss"] == pytest.approx(skm.log_loss(y[:1000], proba), rel=1e-6)
    logs.feedback("labels", ids[1500:], y[1500:].tolist())  # the rest, even later
    m.run_once()
    second = build_report(m.store, "labels")["performance"]
    assert second["labelled_rows"] == 1000


def test_error_stream_collapse_raises_performance_degraded(
    registry: Registry, logs: Logs, make_monitor: Any
) -> None:
    est, ref = fit_classifier(d=4)
    mv = registry.register("ddm", est, reference=ref)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3000, 4))
    pred = est.predict(x.astype(np.float32))
    ids = [f"q{i}" for i in range(3000)]
    logs.predictions(mv, x, estimator=est, request_ids=ids)
    truth = np.where(np.arange(3000) < 1500, pred, 1 - pred)  # right, then all wrong
    m = make_monitor()
    assert "model.performance.degraded" not in m.run_once().events
    logs.feedback("ddm", ids, truth.tolist())
    result = m.run_once()
    assert result.events.count("model.performance.degraded") >= 1
    flags = m.store.con.execute(
        "SELECT w.seq FROM window_flags f JOIN windows w USING (window_id) WHERE f.detector = 'ddm'"
    ).fetchall()
    assert flags and min(s for (s,) in flags) >= 2  # the collapse starts in window 2
    accuracy = [
        w["performance"]["accuracy"] for w in build_report(m.store, "ddm", window="all")["windows"]
    ]
    assert accuracy[0] > 0.99 and accuracy[2] < 0.01


def test_regression_metrics_and_prediction_drift(
    registry: Registry, logs: Logs, make_monitor: Any
) -> None:
    est, ref = fit_regressor(d=3)
    mv = registry.register("price", est, reference=ref)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1000, 3)) + 1.0  # every feature shifted by ~1 sigma
    y = x @ np.arange(1, 4)
    ids = [f"p{i}" for i in range(1000)]
    logs.predictions(mv, x, estimator=est, request_ids=ids)
    logs.feedback("price", ids, y.tolist())
    m = make_monitor(MonitorConfig(consecutive=1))
    result = m.run_once()
    doc = build_report(m.store, "price")
    assert doc["dataset_drift"] is True and doc["share_drifted"] == 1.0
    assert result.events == ["model.drift.detected"]
    pred = est.predict(x.astype(np.float32))
    perf = doc["performance"]
    assert perf["mae"] == pytest.approx(np.abs(pred - y).mean())
    assert perf["rmse"] == pytest.approx(np.sqrt(((pred - y) ** 2).mean()))
    (column,) = doc["prediction"]["columns"]
    assert column["role"] == "prediction" and column["drifted"]


def test_versions_and_routes_get_their_own_windows(
    registry: Registry, logs: Logs, make_monitor: Any
) -> None:
    est, ref = fit_classifier(d=4)
    v1 = registry.register("split", est, reference=ref)
    est2, ref2 = fit_classifier(d=4, seed=9)
    v2 = registry.register("split", est2, reference=ref2)
    rng = np.random.default_rng(6)
    logs.predictions(v1, rng.normal(size=(1200, 4)), estimator=est)
    logs.predictions(v2, rng.normal(size=(1000, 4)), estimator=est2, route="canary")
    m = make_monitor()
    m.run_once()
    keys = {(r["version"], r["route"]) for r in _summaries(m)}
    assert keys == {(1, "champion"), (2, "canary")}
    assert build_report(m.store, "split", version=2)["route"] == "canary"


def test_prediction_rows_are_dropped_after_the_label_horizon(
    registry: Registry, logs: Logs, make_monitor: Any, clock: Any
) -> None:
    est, ref = fit_classifier(d=4)
    mv = registry.register("aging", est, reference=ref)
    rng = np.random.default_rng(9)
    logs.predictions(mv, rng.normal(size=(1500, 4)), estimator=est)
    m = make_monitor(MonitorConfig(label_horizon_s=86_400))
    clock.now = T0_US / 1e6  # the logs' own time: nothing is old yet
    m.run_once()
    assert m.store.con.execute("SELECT count(*) FROM prediction_rows").fetchone() == (1500,)
    clock.advance(2 * 86_400)
    m.run_once()
    # the complete window aged out; the open window's rows wait for their labels
    assert m.store.con.execute("SELECT count(*) FROM prediction_rows").fetchone() == (500,)


def test_labels_are_dropped_after_the_label_horizon_matched_or_not(
    registry: Registry, logs: Logs, make_monitor: Any, clock: Any
) -> None:
    est, ref = fit_classifier(d=4)
    mv = registry.register("aging", est, reference=ref)
    logs.predictions(mv, np.random.default_rng(9).normal(size=(100, 4)), estimator=est)
    unknown = [f"nobody-{i}" for i in range(2000)]
    logs.feedback("aging", unknown, [1] * len(unknown), ts_us=T0_US)
    logs.feedback("aging", ["late-0"], [0], ts_us=T0_US + 2 * 86_400 * 10**6, worker="w2")
    m = make_monitor(MonitorConfig(label_horizon_s=86_400))
    clock.now = T0_US / 1e6
    m.run_once()
    assert m.store.con.execute("SELECT count(*) FROM feedback").fetchone() == (2001,)
    clock.advance(2 * 86_400 + 1)
    m.run_once()
    # the 2,000 labels for ids no prediction has are gone; the recent one waits
    remaining = m.store.con.execute("SELECT request_id FROM feedback").fetchall()
    assert remaining == [("late-0",)]


def test_categorical_feature_end_to_end(registry: Registry, logs: Logs, make_monitor: Any) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(10)

    def draw(n: int, p: list[float], extra: str | None = None) -> np.ndarray:
        x = np.empty((n, 2), dtype=object)
        x[:, 0] = rng.choice(["red", "green", "blue"], size=n, p=p)
        if extra is not None:
            x[::5, 0] = extra  # 20% of a category never seen in the reference
        x[:, 1] = rng.normal(size=n)
        return x

    ref_x = draw(3000, [0.5, 0.3, 0.2])
    y = ((ref_x[:, 0] == "red") ^ (ref_x[:, 1].astype(float) > 0)).astype(int)
    encode = ColumnTransformer(
        [("oh", OneHotEncoder(handle_unknown="ignore"), [0])], remainder="passthrough"
    )
    est = make_pipeline(encode, LogisticRegression()).fit(ref_x, y)
    reference = pl.DataFrame({"x0": ref_x[:, 0].tolist(), "x1": ref_x[:, 1].astype(float)})
    mv = registry.register("colors", est, reference=reference)
    assert mv.input_schema.features[0].categories == ["blue", "green", "red"]
    logs.predictions(mv, draw(1000, [0.5, 0.3, 0.2]), estimator=est)
    logs.predictions(mv, draw(2000, [0.1, 0.2, 0.7], extra="purple"), estimator=est,
                     start_us=T0_US + 10**9)  # fmt: skip
    m = make_monitor()
    m.run_once()
    doc = build_report(m.store, "colors", window="all")
    first, last = doc["windows"][0], doc["windows"][-1]
    color = {f["name"]: f for f in first["features"]}["x0"]
    assert color["kind"] == "categorical" and not color["drifted"]
    assert color["unseen_share"] == 0.0 and color["chi2_pvalue"] > 1e-4
    moved = {f["name"]: f for f in last["features"]}["x0"]
    assert moved["drifted"] and moved["unseen_share"] == pytest.approx(0.2)
    assert moved["psi"] > 0.2 and moved["chi2_pvalue"] < 1e-6
    assert not any(p["kind"] == "no_prediction_reference" for p in m.store.problems())


def test_mixed_segment_keeps_each_rows_request_hash(
    registry: Registry, logs: Logs, make_monitor: Any
) -> None:
    """Rows of two versions interleaved in one segment: each prediction row keeps the hash of
    its own request id (the feedback join key) through the per-version filtering."""
    import duckdb

    est, ref = fit_classifier(d=4)
    v1 = registry.register("mixed", est, reference=ref)
    v2 = registry.register("mixed", est, reference=ref)
    rng = np.random.default_rng(12)
    ids = [f"r{i}" for i in range(1600)]
    a = logs.predictions(v1, rng.normal(size=(800, 4)), estimator=est, request_ids=ids[::2])
    b = logs.predictions(v2, rng.normal(size=(800, 4)), estimator=est, request_ids=ids[1::2],
                         route="canary")  # fmt: skip
    frames = [pl.read_parquet(a), pl.read_parquet(b)]
    a.unlink()
    b.unlink()
    mixed = pl.concat([f.with_row_index("i") for f in frames]).sort("i").drop("i")
    logs.write(mixed, "predictions", "mixed", T0_US, "w9")  # versions interleaved row by row
    m = make_monitor(MonitorConfig(window_rows=400))
    assert m.run_once().rows == 1600
    got = m.store.con.execute(
        "SELECT w.version, p.rid FROM prediction_rows p JOIN windows w USING (window_id)"
    ).fetchall()
    want = duckdb.sql(
        "SELECT hash(id::VARCHAR) AS rid, i % 2 + 1 AS version FROM"
        " (SELECT unnest(range(1600)) AS i, 'r' || i AS id)"
    ).fetchall()
    assert sorted(got) == sorted((v, rid) for rid, v in want)


def test_statistics_split_their_windows_when_duckdb_runs_out_of_memory(
    registry: Registry,
    logs: Logs,
    make_monitor: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    """A wide model can need more than ``duckdb_memory_limit`` for ``CHUNK_WINDOWS`` windows
    at once: the windows are then computed in halves, with the same results."""
    import duckdb

    from monitor.compute import summaries as compute

    est, ref = fit_classifier(d=8, rows=5_000, seed=3)
    mv = registry.register("split", est, reference=ref)
    rng = np.random.default_rng(11)
    logs.predictions(mv, rng.normal(size=(8000, 8)), estimator=est)
    expected = make_monitor()
    expected.run_once()
    want = _summaries(expected)
    expected.close()
    for path in tmp_path.glob("monitor.duckdb*"):  # start over: compute every window again
        path.unlink()

    real = compute.window_statistics
    calls: list[int] = []

    def at_most_two_windows(
        store: Any, window_ids: list[int], **options: Any
    ) -> dict[str, np.ndarray]:
        calls.append(len(window_ids))
        if len(window_ids) > 2:
            raise duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block")
        return real(store, window_ids, **options)

    monkeypatch.setattr(compute, "window_statistics", at_most_two_windows)
    split = make_monitor()
    split.run_once()
    assert _summaries(split) == want and len(want) == 8
    assert calls[0] == 8 and max(n for n in calls if n <= 2) == 2


def test_statistics_take_as_many_windows_as_the_memory_limit_allows(
    registry: Registry, logs: Logs, make_monitor: Any
) -> None:
    """Chunks are sized from ``duckdb_memory_limit`` and the widest version's reference bins
    (the statistics query needs ~``BYTES_PER_BIN`` a bin), so the usual pass never has to
    fall back to splitting on an out-of-memory error."""
    from monitor.compute import summaries as compute

    assert compute.parse_bytes("64MB") == 64_000_000
    assert compute.parse_bytes("1.5 GiB") == 1_610_612_736
    assert compute.parse_bytes("80%") is None and compute.parse_bytes(None) is None
    est, ref = fit_classifier(d=8, rows=5_000, seed=3)
    mv = registry.register("chunks", est, reference=ref)
    logs.predictions(mv, np.random.default_rng(12).normal(size=(1000, 8)), estimator=est)
    m = make_monitor()
    m.run_once()
    (bins,) = m.store.con.execute(
        "SELECT sum(coalesce(len(ref_cum), 0) + coalesce(len(ref_coarse), 0)) FROM profile_columns"
    ).fetchone() or (0,)
    assert bins > 8 * 1000  # 8 features of ~1,000 fine bins, the score, the classes
    per_chunk = 64_000_000 // (compute.BYTES_PER_BIN * bins)
    assert compute.chunk_windows(m.store, "64MB") == per_chunk
    assert compute.chunk_windows(m.store, "1MB") == 1  # always at least one window
    assert compute.chunk_windows(m.store, "64GB") == compute.MAX_CHUNK_WINDOWS
    assert compute.chunk_windows(m.store, "80%") == compute.MAX_CHUNK_WINDOWS // 2


def test_prediction_rows_of_time_windows_keep_each_rows_window(
    registry: Registry, logs: Logs, make_monitor: Any
) -> None:
    """Rows of two minutes interleaved out of order in one segment: each prediction row is
    stored with the window of its own minute (and its own request id's hash)."""
    import duckdb

    est, ref = fit_classifier(d=4)
    mv = registry.register("shuffled", est, reference=ref)
    rng = np.random.default_rng(13)
    minute = 60_000_000
    path = logs.predictions(mv, rng.normal(size=(900, 4)), estimator=est,
                            request_ids=[f"t{i}" for i in range(900)])  # fmt: skip
    frame = pl.read_parquet(path)
    order = rng.permutation(900)
    ts = (T0_US + (order % 3) * minute // 2).astype(np.int64)  # minutes 0, 0.5, 1 shuffled
    frame = frame.with_columns(pl.Series("ts", ts).cast(pl.Datetime("us", "UTC")))
    path.unlink()
    logs.write(frame, "predictions", "shuffled", T0_US, "w9")
    m = make_monitor(MonitorConfig(window_s=60, lateness_s=0, min_rows=100))
    assert m.run_once().rows == 900
    got = m.store.con.execute(
        "SELECT p.rid, w.time_key FROM prediction_rows p JOIN windows w USING (window_id)"
    ).fetchall()
    keys = (ts // minute).tolist()
    want = duckdb.sql(
        "SELECT hash(id::VARCHAR), k FROM (SELECT unnest(?) AS id, unnest(?) AS k)",
        params=[[f"t{i}" for i in range(900)], keys],
    ).fetchall()
    assert sorted(got) == sorted(want) and len(got) == 900
