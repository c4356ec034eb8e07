"""Segments read, the feedback they brought and the prediction rows kept for the join."""

from __future__ import annotations

from typing import TYPE_CHECKING

from monitor.store.base import Tables
from monitor.store.rows import LabelledError, SegmentRow

if TYPE_CHECKING:
    import numpy as np


class SegmentTables(Tables):
    # -- segments -------------------------------------------------------------------------
    def segments(self, kind: str) -> dict[str, SegmentRow]:
        """Every segment of ``kind`` looked at so far, by key (path relative to the log
        store's root)."""
        rows = self.con.execute(
            f"SELECT {', '.join(SegmentRow._fields)} FROM segments WHERE kind = ?", [kind]
        ).fetchall()
        return {str(r[0]): SegmentRow(*r) for r in rows}

    def record_segment(self, row: SegmentRow) -> None:
        """Remember a segment (read, or refused with the reason), replacing its last row."""
        self.con.execute(
            f"INSERT OR REPLACE INTO segments ({', '.join(SegmentRow._fields)})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            list(row),
        )

    def forget_segment(self, path: str) -> None:
        self.con.execute("DELETE FROM segments WHERE path = ?", [path])

    def segment_paths(self) -> list[tuple[str, str]]:
        """``(key, kind)`` of every segment row (to migrate keys)."""
        rows = self.con.execute("SELECT path, kind FROM segments").fetchall()
        return [(str(p), str(k)) for p, k in rows]

    def rekey_segments(self, moves: list[tuple[str, str]]) -> None:
        """Rename segment rows ``(old key, new key)`` in one transaction; a new key that is
        already there keeps its row (the old one is dropped)."""
        fields = ", ".join(SegmentRow._fields)
        with self.transaction():
            for old, new in moves:
                rows = self.con.execute(
                    f"SELECT {fields} FROM segments WHERE path IN (?, ?) ORDER BY path = ?",
                    [old, new, new],
                ).fetchall()
                self.forget_segment(old)
                if rows and rows[-1][0] == old:  # no row under the new key yet
                    self.record_segment(SegmentRow(*rows[-1])._replace(path=new))

    # -- feedback ---------------------------------------------------------------------------
    def parquet_columns(self, path_sql: str) -> list[str]:
        """Column names of the Parquet file(s) of a DuckDB list literal (raises
        ``duckdb.Error`` when it is not readable Parquet)."""
        rows = self.con.execute(f"DESCRIBE SELECT * FROM read_parquet({path_sql})").fetchall()
        return [str(r[0]) for r in rows]

    def stage_feedback(self, select_sql: str) -> int:
        """Load labels (``request_id, rid, label, label_value, ts_us``) from ``select_sql``
        into the pass's staging table; returns how many (inside the caller's transaction)."""
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE _fb AS {select_sql}")
        row = self.con.execute("SELECT count(*) FROM _fb").fetchone()
        return int(row[0]) if row else 0

    def merge_staged_feedback(self, model: str) -> None:
        """The staged labels replace earlier ones of the same requests."""
        self.con.execute(
            "DELETE FROM feedback WHERE model = ? AND request_id IN (SELECT request_id FROM _fb)",
            [model],
        )
        self.con.execute(
            "INSERT INTO feedback SELECT ?, request_id, rid, label, label_value, ts_us FROM _fb",
            [model],
        )

    def staged_errors(self, model: str) -> list[LabelledError]:
        """Whether each staged label's classification was wrong, in label order."""
        rows = self.con.execute(
            "SELECT w.version, w.route, p.window_id,"
            " ((CASE WHEN p.prediction >= 1 THEN v.classes[p.prediction::INTEGER] END)"
            " IS DISTINCT FROM f.label)"
            " FROM _fb f JOIN prediction_rows p ON p.rid = f.rid"
            " JOIN windows w ON w.window_id = p.window_id AND w.model = ?"
            " JOIN versions v ON v.model = w.model AND v.version = w.version"
            " WHERE v.task = 'classification' ORDER BY f.ts_us, f.request_id",
            [model],
        ).fetchall()
        return [LabelledError(int(v), str(r), int(w), bool(e)) for v, r, w, e in rows]

    def drop_staged_feedback(self) -> None:
        self.con.execute("DROP TABLE IF EXISTS _fb")

    # -- prediction rows --------------------------------------------------------------------
    def add_prediction_rows(self, window_sql: str, values_sql: str, parquet_sql: str) -> None:
        """Rows of a segment whose window is an expression over ``file_row_number``."""
        # the rows' order in the table does not matter, and keeping it made DuckDB insert
        # on one thread under the 64MB memory limit (a failed insert aborts the transaction,
        # where RESET fails too: ``reset_insertion_order`` runs after the ROLLBACK)
        self.con.execute("SET preserve_insertion_order = false")
        self.con.execute(
            f"INSERT INTO prediction_rows SELECT {window_sql}, {values_sql}"
            f" FROM read_parquet({parquet_sql}, hive_partitioning = false,"
            " file_row_number = true) p"
        )
        self.con.execute("RESET preserve_insertion_order")

    def add_prediction_rows_paired(
        self, row_windows: np.ndarray, parts: list[tuple[str, str]], parquet_sql: str
    ) -> None:
        """Rows of a segment paired by position with ``row_windows``; ``parts`` are
        ``(values_sql, where_sql)`` per version (rows of no window are left out)."""
        import pyarrow as pa

        self.con.register("_row_windows", pa.table({"window_id": row_windows}))
        try:
            for values_sql, where in parts:
                self.con.execute(
                    f"INSERT INTO prediction_rows SELECT w.window_id, {values_sql}"
                    f" FROM read_parquet({parquet_sql}, hive_partitioning = false) p"
                    f" POSITIONAL JOIN _row_windows w WHERE {where}"
                )
        finally:
            self.con.unregister("_row_windows")

    def reset_insertion_order(self) -> None:
        """After a rollback: the setting an insert relaxed outlives it."""
        self.con.execute("RESET preserve_insertion_order")

    def prune_feedback(self, before_us: int) -> None:
        """Forget labels that arrived before ``before_us`` (matched or not)."""
        self.con.execute("DELETE FROM feedback WHERE ts_us < ?", [before_us])

    def prune_prediction_rows(self, before_us: int) -> None:
        """Forget prediction rows of complete windows that ended before ``before_us``."""
        self.con.execute(
            "DELETE FROM prediction_rows WHERE window_id IN"
            " (SELECT window_id FROM windows WHERE complete AND end_us < ?)",
            [before_us],
        )
