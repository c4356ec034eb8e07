"""Ingesting ground-truth feedback segments and feeding the error stream to DDM."""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb
import numpy as np

from monitor.detectors.streams import ErrorMonitor, error_monitor
from monitor.ingest.predictions import SegmentError
from monitor.ingest.segment import request_hash_sql, sql_list

if TYPE_CHECKING:
    from monitor.ingest.logstore import Segment
    from monitor.store import MonitorStore

FEEDBACK_REQUIRED = ("request_id", "label")


Detection = tuple[int, str, int, int]  # version, route, window_id, detections


def ingest_feedback(
    store: MonitorStore, segment: Segment, local_path: str, *, now: float
) -> list[Detection]:
    """Add one feedback segment (last label per request wins); commits itself.

    Returns the DDM detections its labels caused, per (version, route, window)."""
    con = store.con
    src = f"read_parquet({sql_list([local_path])})"
    try:
        cols = [str(r[0]) for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()]
    except duckdb.Error as exc:
        raise SegmentError(
            "corrupt_segment", f"{segment.path}: not readable Parquet: {exc}"
        ) from exc
    missing = [c for c in FEEDBACK_REQUIRED if c not in cols]
    if missing:
        raise SegmentError(
            "foreign_segment",
            f"{segment.path}: not a feedback segment: missing columns {missing}, got {cols[:8]}",
        )
    value = (
        "TRY_CAST(label_value AS DOUBLE)" if "label_value" in cols else "TRY_CAST(label AS DOUBLE)"
    )
    ts = "epoch_us(ts)" if "ts" in cols else "NULL::BIGINT"
    model = segment.model or ""
    con.execute("BEGIN")
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _fb AS SELECT request_id::VARCHAR AS request_id,"
            f" {request_hash_sql('request_id')} AS rid,"
            f" label::VARCHAR AS label, {value} AS label_value, {ts} AS ts_us FROM {src}"
            " WHERE request_id IS NOT NULL"
            " QUALIFY row_number() OVER (PARTITION BY request_id ORDER BY ts_us DESC) = 1"
        )
        con.execute(
            "DELETE FROM feedback WHERE model = ? AND request_id IN (SELECT request_id FROM _fb)",
            [model],
        )
        con.execute(
            "INSERT INTO feedback SELECT ?, request_id, rid, label, label_value, ts_us FROM _fb",
            [model],
        )
        rows = con.execute("SELECT count(*) FROM _fb").fetchone()
        n = int(rows[0]) if rows else 0
        detections = _feed_errors(store, model)
        con.execute(
            "INSERT INTO segments VALUES (?, ?, ?, ?, ?, ?, 'ok', NULL, ?)",
            [segment.path, segment.kind, segment.model, segment.size, segment.mtime_ns, n, now],
        )
        con.execute("DROP TABLE _fb")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return detections


def _feed_errors(store: MonitorStore, model: str) -> list[Detection]:
    """Feed the classification errors of newly labelled rows to each route's DDM."""
    rows = store.con.execute(
        "SELECT w.version, w.route, p.window_id,"
        " ((CASE WHEN p.prediction >= 1 THEN v.classes[p.prediction::INTEGER] END)"
        " IS DISTINCT FROM f.label)"
        " FROM _fb f JOIN prediction_rows p ON p.rid = f.rid"
        " JOIN windows w ON w.window_id = p.window_id AND w.model = ?"
        " JOIN versions v ON v.model = w.model AND v.version = w.version"
        " WHERE v.task = 'classification' ORDER BY f.ts_us, f.request_id",
        [model],
    ).fetchall()
    by_key: dict[tuple[int, str], list[tuple[int, bool]]] = {}
    for version, route, window_id, error in rows:
        by_key.setdefault((int(version), str(route)), []).append((int(window_id), bool(error)))
    found: list[Detection] = []
    for (version, route), items in by_key.items():
        key = (model, version, route)
        monitor = error_monitor(key, store.detector_state(key, ErrorMonitor.NAME))
        flags: dict[int, int] = {}
        for window_id, error in items:
            if monitor.update(np.array([error])):
                flags[window_id] = flags.get(window_id, 0) + 1
        store.save_detector_state(key, monitor.NAME, monitor.state())
        for window_id, count in flags.items():
            store.con.execute("INSERT INTO window_flags VALUES (?, 'ddm', ?)", [window_id, count])
            found.append((version, route, window_id, count))
    return found
