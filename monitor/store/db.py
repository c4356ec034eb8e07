"""The monitor's own DuckDB file: ingested segments, profiles, window counts, results, outbox.

Every SQL statement the monitor runs on it is a method of :class:`MonitorStore`; the other
stages pass and get named rows (``monitor.store.rows``).

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

from monitor.detectors.streams import DetectorState
from monitor.stats.profile import CATEGORICAL, ColumnProfile, ReferenceProfile, coarse_counts
from monitor.store import schema
from monitor.store.alerts import AlertTables
from monitor.store.results import ResultTables
from monitor.store.segments import SegmentTables
from monitor.store.windows import WindowTables

log = logging.getLogger(__name__)


class StoreBusy(RuntimeError):
    """Another process holds ``monitor.duckdb`` (DuckDB allows one writer process)."""


class MonitorStore(SegmentTables, WindowTables, ResultTables, AlertTables):
    """Owns the DuckDB connection to ``monitor.duckdb`` (or ``:memory:``) and every read and
    write of its tables (grouped by stage in ``monitor.store.segments``, ``.windows``,
    ``.results``, ``.alerts``; problems, profiles, versions and detector state here).

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
            schema.create(con)
        return con

    def release(self) -> None:
        """Close the connection (reopened on next use)."""
        if self._con is not None and self.path != ":memory:":
            self._con.close()
            self._con = None

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

    def resolve_problems(self, kind: str, path: str) -> None:
        """Forget ``kind`` problems of ``path``: the segment was read after all."""
        self.con.execute("DELETE FROM problems WHERE kind = ? AND path = ?", [kind, path])

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
