"""The monitor's own DuckDB file: ingested segments, profiles, window counts, results, outbox.

One connection per ``MonitorStore``; every method runs on the caller's thread (the service
keeps all store work on one worker thread). Writes that belong together (a segment's counts
and its ingestion record) go in one transaction, which is what makes ingestion exactly-once.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from monitor.detectors.legacy import LegacyStateError, from_pickle
from monitor.detectors.streams import DetectorState
from monitor.stats.profile import CATEGORICAL, ColumnProfile, ReferenceProfile, coarse_counts

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
CREATE TABLE IF NOT EXISTS event_cursor (model VARCHAR PRIMARY KEY, position BIGINT);
"""


def _migrate_detector_pickles(con: duckdb.DuckDBPyConnection) -> None:
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


class StoreBusy(RuntimeError):
    """Another process holds ``monitor.duckdb`` (DuckDB allows one writer process)."""


class MonitorStore:
    """Owns the DuckDB connection to ``monitor.duckdb`` (or ``:memory:``).

    The connection opens on first use and ``release()`` closes it, so that a monitor that
    releases between passes lets ``mlgate monitor report`` (another process) read the file.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        threads: int = 2,
        memory_limit: str | None = None,
        read_only: bool = False,
        wait_s: float = 0.0,
    ) -> None:
        self.path = str(path)
        self.read_only = read_only
        self.wait_s = wait_s
        if self.path != ":memory:" and not read_only:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._config: dict[str, Any] = {"threads": threads}
        if memory_limit:
            self._config["memory_limit"] = memory_limit
        self._con: duckdb.DuckDBPyConnection | None = None
        self.lock = threading.RLock()
        self._next_window_id: int | None = None
        _ = self.con  # open now: a bad path or a busy file fails here, not mid-pass

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = self._connect()
        return self._con

    def _connect(self) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                con = duckdb.connect(self.path, read_only=self.read_only, config=self._config)
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() >= deadline:
                    raise StoreBusy(
                        f"{self.path}: held by another process (a running monitor?);"
                        f" DuckDB allows one writer: {exc}"
                    ) from exc
                time.sleep(0.1)  # the monitor releases the file between passes
        if not self.read_only:
            con.execute(SCHEMA)
            _migrate_detector_pickles(con)
        return con

    def release(self) -> None:
        """Close the connection (reopened on next use)."""
        if self._con is not None and self.path != ":memory:":
            self._con.close()
            self._con = None

    def next_window_id(self) -> int:
        """A fresh window id (ids lost to a rolled-back transaction are simply skipped)."""
        if self._next_window_id is None:
            row = self.con.execute("SELECT coalesce(max(window_id), 0) FROM windows").fetchone()
            self._next_window_id = int(row[0]) + 1 if row else 1
        wid = self._next_window_id
        self._next_window_id += 1
        return wid

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    # -- problems ---------------------------------------------------------------------------
    def record_problem(
        self,
        *,
        ts: float,
        kind: str,
        detail: str,
        model: str | None = None,
        version: int | None = None,
        path: str | None = None,
    ) -> None:
        self.con.execute(
            "INSERT INTO problems VALUES (?, ?, ?, ?, ?, ?)",
            [ts, model, version, kind, detail, path],
        )

    def problems(self, model: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT ts, model, version, kind, detail, path FROM problems"
        params: list[Any] = []
        if model is not None:
            sql += " WHERE model = ? OR model IS NULL"
            params.append(model)
        rows = self.con.execute(sql + " ORDER BY ts", params).fetchall()
        keys = ("ts", "model", "version", "kind", "detail", "path")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    # -- profiles ---------------------------------------------------------------------------
    def has_profile(self, profile_id: str) -> bool:
        row = self.con.execute(
            "SELECT count(*) FROM profiles WHERE profile_id = ?", [profile_id]
        ).fetchone()
        return bool(row and row[0])

    def save_profile(self, profile: ReferenceProfile, *, now: float) -> None:
        """Every column of ``profile`` in one insert (replacing a profile of the same id)."""
        rows = [_column_row(profile.profile_id, p, col) for p, col in enumerate(profile.columns)]
        table = pa.table(
            {key: pa.array([r[key] for r in rows], type) for key, type in _PROFILE_COLUMNS}
        )
        self.con.execute("BEGIN")
        try:
            self.con.execute(
                "DELETE FROM profile_columns WHERE profile_id = ?", [profile.profile_id]
            )
            self.insert_arrow("profile_columns", table)
            self.con.execute(
                "INSERT OR REPLACE INTO profiles VALUES (?, ?, ?)",
                [profile.profile_id, profile.rows, now],
            )
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def load_profile(self, profile_id: str) -> ReferenceProfile | None:
        prof = self.con.execute(
            "SELECT rows FROM profiles WHERE profile_id = ?", [profile_id]
        ).fetchone()
        if prof is None:
            return None
        rows = self.con.execute(
            "SELECT name, kind, role, ref_rows, ref_nulls, mean, std, boundaries, categories,"
            " counts, coarse FROM profile_columns WHERE profile_id = ? ORDER BY position",
            [profile_id],
        ).fetchall()
        cols = [
            ColumnProfile(
                name=r[0],
                kind=r[1],
                role=r[2],
                ref_rows=r[3],
                ref_nulls=r[4],
                mean=r[5],
                std=r[6],
                boundaries=np.asarray(r[7] or [], dtype=np.float64),
                categories=list(r[8] or []),
                counts=np.asarray(r[9], dtype=np.int64),
                coarse=np.asarray(r[10], dtype=np.int64),
            )
            for r in rows
        ]
        return ReferenceProfile(profile_id=profile_id, columns=cols, rows=int(prof[0]))

    # -- versions ---------------------------------------------------------------------------
    def version_row(self, model: str, version: int) -> dict[str, Any] | None:
        row = self.con.execute(
            "SELECT profile_id, prediction_profile_id, task, classes, features, status, detail"
            " FROM versions WHERE model = ? AND version = ?",
            [model, version],
        ).fetchone()
        if row is None:
            return None
        keys = ("profile_id", "prediction_profile_id", "task", "classes", "features")
        out = dict(zip(keys, row[:5], strict=True))
        out["status"], out["detail"] = row[5], row[6]
        return out

    def save_version(self, model: str, version: int, **values: Any) -> None:
        self.con.execute(
            "INSERT OR REPLACE INTO versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                model,
                version,
                values.get("profile_id"),
                values.get("prediction_profile_id"),
                values.get("task"),
                values.get("classes"),
                values.get("features"),
                values.get("status"),
                values.get("detail"),
            ],
        )

    def set_prediction_profile(self, model: str, version: int, profile_id: str) -> None:
        self.con.execute(
            "UPDATE versions SET prediction_profile_id = ? WHERE model = ? AND version = ?",
            [profile_id, model, version],
        )

    # -- detector state ----------------------------------------------------------------------
    def detector_state(self, key: tuple[str, int, str], detector: str) -> DetectorState | None:
        """The arrays of one detector stream, or None when it has none yet."""
        row = self.con.execute(
            "SELECT floats, ints FROM detector_state"
            " WHERE model = ? AND version = ? AND route = ? AND detector = ?",
            [*key, detector],
        ).fetchone()
        if row is None or row[0] is None or row[1] is None:
            return None
        return DetectorState(np.asarray(row[0], np.float64), np.asarray(row[1], np.int64))

    def save_detector_state(
        self, key: tuple[str, int, str], detector: str, state: DetectorState
    ) -> None:
        self.con.execute(
            "INSERT OR REPLACE INTO detector_state (model, version, route, detector, state,"
            " floats, ints) VALUES (?, ?, ?, ?, NULL, ?, ?)",
            [*key, detector, state.floats.tolist(), state.ints.tolist()],
        )

    # -- registry event cursor ---------------------------------------------------------------
    def event_cursor(self, model: str) -> int:
        """How many lines of ``model``'s registry trail were already looked at."""
        row = self.con.execute(
            "SELECT position FROM event_cursor WHERE model = ?", [model]
        ).fetchone()
        return int(row[0]) if row else 0

    def set_event_cursor(self, model: str, position: int) -> None:
        self.con.execute("INSERT OR REPLACE INTO event_cursor VALUES (?, ?)", [model, position])

    # -- generic ----------------------------------------------------------------------------
    def insert_arrow(self, table_name: str, table: pa.Table) -> None:
        self.con.register("_incoming", table)
        try:
            self.con.execute(f"INSERT INTO {table_name} SELECT * FROM _incoming")
        finally:
            self.con.unregister("_incoming")


_PROFILE_COLUMNS = (
    ("profile_id", pa.string()),
    ("name", pa.string()),
    ("position", pa.int32()),
    ("kind", pa.string()),
    ("role", pa.string()),
    ("ref_rows", pa.int64()),
    ("ref_nulls", pa.int64()),
    ("mean", pa.float64()),
    ("std", pa.float64()),
    ("boundaries", pa.list_(pa.float64())),
    ("categories", pa.list_(pa.string())),
    ("counts", pa.list_(pa.int64())),
    ("coarse", pa.list_(pa.int32())),
    ("ref_cum", pa.list_(pa.int64())),
    ("ref_coarse", pa.list_(pa.int64())),
    ("widths", pa.list_(pa.float64())),
)


def _column_row(profile_id: str, pos: int, col: ColumnProfile) -> dict[str, Any]:
    """One ``profile_columns`` row (in ``_PROFILE_COLUMNS`` order, the table's own)."""
    width = np.zeros(col.n_bins, dtype=np.float64)
    if col.kind != CATEGORICAL and len(col.boundaries) > 1:
        # fine bin k (1..m-1) spans [B[k-1], B[k]] in the snapped-CDF integral
        width[1 : len(col.boundaries)] = np.diff(col.boundaries)
    return {
        "profile_id": profile_id,
        "name": col.name,
        "position": pos,
        "kind": col.kind,
        "role": col.role,
        "ref_rows": col.ref_rows,
        "ref_nulls": col.ref_nulls,
        "mean": col.mean,
        "std": col.std,
        "boundaries": col.boundaries,
        "categories": col.categories,
        "counts": col.counts,
        "coarse": col.coarse.astype(np.int32),
        "ref_cum": np.cumsum(col.counts),
        "ref_coarse": coarse_counts(col.counts, col.coarse),
        "widths": width,
    }
