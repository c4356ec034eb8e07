"""The monitor's tables, and the upgrades an older file gets when it is opened."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from monitor.detectors.legacy import LegacyStateError, from_pickle

if TYPE_CHECKING:
    import duckdb

    from monitor.detectors.streams import DetectorState

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    path VARCHAR PRIMARY KEY, kind VARCHAR, model VARCHAR, size BIGINT, mtime_ns BIGINT,
    rows BIGINT, status VARCHAR, detail VARCHAR, ingested_at DOUBLE);
CREATE TABLE IF NOT EXISTS problems (
    ts DOUBLE, model VARCHAR, version BIGINT, kind VARCHAR, detail VARCHAR, path VARCHAR);
CREATE TABLE IF NOT EXISTS profiles (
    profile_id VARCHAR PRIMARY KEY, rows BIGINT, created_at DOUBLE);
CREATE TABLE IF NOT EXISTS profile_columns (
    profile_id VARCHAR, name VARCHAR, position INTEGER, kind VARCHAR, role VARCHAR,
    ref_rows BIGINT, ref_nulls BIGINT, mean DOUBLE, std DOUBLE, boundaries DOUBLE[],
    categories VARCHAR[], counts BIGINT[], coarse INTEGER[], ref_cum BIGINT[],
    ref_coarse BIGINT[], widths DOUBLE[]);
CREATE TABLE IF NOT EXISTS versions (
    model VARCHAR, version BIGINT, profile_id VARCHAR, prediction_profile_id VARCHAR,
    task VARCHAR, classes VARCHAR[], features VARCHAR[], status VARCHAR, detail VARCHAR,
    PRIMARY KEY (model, version));
CREATE TABLE IF NOT EXISTS windows (
    window_id BIGINT PRIMARY KEY, model VARCHAR, version BIGINT, route VARCHAR,
    seq BIGINT, time_key BIGINT, start_us BIGINT, end_us BIGINT, rows BIGINT,
    complete BOOLEAN, revision INTEGER, computed_revision INTEGER);
CREATE TABLE IF NOT EXISTS window_flags (window_id BIGINT, detector VARCHAR, detections BIGINT);
CREATE TABLE IF NOT EXISTS window_counts (
    window_id BIGINT, name VARCHAR, cum INTEGER[], coarse INTEGER[], nulls BIGINT,
    under_sum DOUBLE, over_sum DOUBLE, total DOUBLE, total_sq DOUBLE);
CREATE TABLE IF NOT EXISTS prediction_rows (
    window_id BIGINT, rid UBIGINT, prediction DOUBLE, probas FLOAT[]);
CREATE TABLE IF NOT EXISTS feedback (
    model VARCHAR, request_id VARCHAR, rid UBIGINT, label VARCHAR, label_value DOUBLE,
    ts_us BIGINT);
CREATE TABLE IF NOT EXISTS results (
    window_id BIGINT, model VARCHAR, version BIGINT, route VARCHAR, seq BIGINT,
    name VARCHAR, role VARCHAR, kind VARCHAR, rows BIGINT,
    psi DOUBLE, psi_threshold DOUBLE, psi_drift BOOLEAN,
    wasserstein DOUBLE, wasserstein_threshold DOUBLE, wasserstein_drift BOOLEAN,
    js DOUBLE, js_threshold DOUBLE, js_drift BOOLEAN,
    null_rate DOUBLE, ref_null_rate DOUBLE, null_rate_threshold DOUBLE, null_rate_drift BOOLEAN,
    unseen_share DOUBLE, unseen_share_threshold DOUBLE, unseen_share_drift BOOLEAN,
    ks DOUBLE, ks_pvalue DOUBLE, ks_pvalue_threshold DOUBLE, ks_pvalue_signal BOOLEAN,
    chi2 DOUBLE, chi2_pvalue DOUBLE, chi2_pvalue_threshold DOUBLE, chi2_pvalue_signal BOOLEAN,
    wasserstein_abs DOUBLE, mean DOUBLE,
    streak INTEGER, consecutive INTEGER, drifted BOOLEAN, computed_at DOUBLE);
CREATE TABLE IF NOT EXISTS summaries (
    window_id BIGINT PRIMARY KEY, model VARCHAR, version BIGINT, route VARCHAR, seq BIGINT,
    rows BIGINT, n_features INTEGER, n_drifted INTEGER, share_drifted DOUBLE,
    share_threshold DOUBLE, dataset_drift BOOLEAN, drifted_features VARCHAR[],
    prediction JSON, performance JSON, labelled_rows BIGINT, computed_at DOUBLE);
CREATE TABLE IF NOT EXISTS detector_state (
    model VARCHAR, version BIGINT, route VARCHAR, detector VARCHAR, state BLOB,
    PRIMARY KEY (model, version, route, detector));
CREATE TABLE IF NOT EXISTS alert_state (
    model VARCHAR, version BIGINT, route VARCHAR, drifting BOOLEAN, degraded BOOLEAN,
    PRIMARY KEY (model, version, route));
CREATE TABLE IF NOT EXISTS outbox (
    id VARCHAR PRIMARY KEY, endpoint VARCHAR, event_type VARCHAR, fingerprint VARCHAR,
    subject VARCHAR,
    body VARCHAR, created_at DOUBLE, attempts INTEGER, next_attempt_at DOUBLE,
    status VARCHAR, last_error VARCHAR, delivered_at DOUBLE, seq BIGINT);
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS alert_id VARCHAR;
ALTER TABLE detector_state ADD COLUMN IF NOT EXISTS floats DOUBLE[];
ALTER TABLE detector_state ADD COLUMN IF NOT EXISTS ints BIGINT[];
ALTER TABLE segments ADD COLUMN IF NOT EXISTS fingerprint VARCHAR;
CREATE TABLE IF NOT EXISTS event_cursor (model VARCHAR PRIMARY KEY, position BIGINT);
"""


def create(con: duckdb.DuckDBPyConnection) -> None:
    """Create what is missing and upgrade what an older monitor left."""
    con.execute(SCHEMA)
    migrate_detector_pickles(con)


def migrate_detector_pickles(con: duckdb.DuckDBPyConnection) -> None:
    """Detector state an older monitor pickled: read once, stored as arrays, pickle dropped."""
    rows = con.execute(
        "SELECT model, version, route, detector, state FROM detector_state"
        " WHERE state IS NOT NULL AND floats IS NULL"
    ).fetchall()
    for model, version, route, detector, blob in rows:
        key = [model, version, route, detector]
        try:
            state: DetectorState | None = from_pickle(bytes(blob)).state()
        except LegacyStateError as exc:
            log.warning("monitor: %s state of %s unreadable (%s); restarted", detector, key, exc)
            state = None
        if state is None:
            con.execute(
                "DELETE FROM detector_state"
                " WHERE model = ? AND version = ? AND route = ? AND detector = ?",
                key,
            )
        else:
            con.execute(
                "UPDATE detector_state SET state = NULL, floats = ?, ints = ?"
                " WHERE model = ? AND version = ? AND route = ? AND detector = ?",
                [state.floats.tolist(), state.ints.tolist(), *key],
            )
