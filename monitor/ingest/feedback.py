"""Ingesting ground-truth feedback segments and feeding the error stream to DDM."""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb
import numpy as np

from monitor.detectors.streams import ErrorMonitor, error_monitor
from monitor.ingest.predictions import SegmentError
from monitor.ingest.segment import request_hash_sql, sql_list
from monitor.store.rows import SegmentRow

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
    path = sql_list([local_path])
    try:
        cols = store.parquet_columns(path)
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
    with store.transaction():
        n = store.stage_feedback(
            f"SELECT request_id::VARCHAR AS request_id,"
            f" {request_hash_sql('request_id')} AS rid,"
            f" label::VARCHAR AS label, {value} AS label_value, {ts} AS ts_us"
            f" FROM read_parquet({path}) WHERE request_id IS NOT NULL"
            " QUALIFY row_number() OVER (PARTITION BY request_id ORDER BY ts_us DESC) = 1"
        )
        store.merge_staged_feedback(model)
        detections = _feed_errors(store, model)
        store.record_segment(
            SegmentRow(segment.key, segment.kind, segment.model, segment.size,
                       segment.mtime_ns, n, "ok", None, now, segment.fingerprint)
        )  # fmt: skip
        store.drop_staged_feedback()
    return detections


def _feed_errors(store: MonitorStore, model: str) -> list[Detection]:
    """Feed the classification errors of newly labelled rows to each route's DDM."""
    by_key: dict[tuple[int, str], list[tuple[int, bool]]] = {}
    for row in store.staged_errors(model):
        by_key.setdefault((row.version, row.route), []).append((row.window_id, row.error))
    found: list[Detection] = []
    for (version, route), items in by_key.items():
        key = (model, version, route)
        monitor = error_monitor(key, store.detector_state(key, ErrorMonitor.NAME))
        flags: dict[int, int] = {}
        for window_id, error in items:
            if monitor.update(np.array([error])):
                flags[window_id] = flags.get(window_id, 0) + 1
        store.save_detector_state(key, monitor.NAME, monitor.state())
        store.add_window_flags([(w, ErrorMonitor.NAME, n) for w, n in flags.items()])
        found += [(version, route, w, n) for w, n in flags.items()]
    return found
