"""Windows, their bin counts and the detector flags raised in them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from monitor.store.base import Tables
from monitor.store.rows import OpenWindow, StoredCounts, WindowRow

if TYPE_CHECKING:
    import pyarrow as pa

Key = tuple[str, int, str]  # model, version, route


class WindowTables(Tables):
    _next_window_id: int | None = None

    def next_window_id(self) -> int:
        """A fresh window id (ids lost to a rolled-back transaction are simply skipped)."""
        if self._next_window_id is None:
            row = self.con.execute("SELECT coalesce(max(window_id), 0) FROM windows").fetchone()
            self._next_window_id = int(row[0]) + 1 if row else 1
        wid = self._next_window_id
        self._next_window_id += 1
        return wid

    def stream_position(self, key: Key) -> tuple[int | None, int | None]:
        """``(last seq, latest end_us)`` of a stream's windows (None when it has none)."""
        row = self.con.execute(
            "SELECT max(seq), max(end_us) FROM windows WHERE model=? AND version=? AND route=?",
            list(key),
        ).fetchone()
        if row is None:
            return None, None
        return (int(row[0]) if row[0] is not None else None,
                int(row[1]) if row[1] is not None else None)  # fmt: skip

    def open_row_window(self, key: Key) -> OpenWindow | None:
        """The stream's newest incomplete window."""
        row = self.con.execute(
            "SELECT window_id, seq, rows FROM windows WHERE model=? AND version=? AND"
            " route=? AND NOT complete ORDER BY seq DESC LIMIT 1",
            list(key),
        ).fetchone()
        return OpenWindow(int(row[0]), int(row[1]), int(row[2])) if row else None

    def time_window(self, key: Key, time_key: int) -> OpenWindow | None:
        """The stream's stored window of one tumbling interval."""
        row = self.con.execute(
            "SELECT window_id, seq, rows FROM windows WHERE model=? AND version=?"
            " AND route=? AND time_key=?",
            [*key, time_key],
        ).fetchone()
        return OpenWindow(int(row[0]), int(row[1]), int(row[2])) if row else None

    def close_time_windows(self, key: Key, width_us: int, horizon_us: int) -> None:
        """Complete the stream's time windows that end at or before ``horizon_us``."""
        self.con.execute(
            "UPDATE windows SET complete = true, revision = revision + 1 WHERE model=? AND"
            " version=? AND route=? AND NOT complete AND (time_key + 1) * ? <= ?",
            [*key, width_us, horizon_us],
        )

    def grow_window(
        self, window_id: int, rows: int, start_us: int | None, end_us: int | None, complete: bool
    ) -> None:
        """Add rows to a stored window; one completed (again) gets a new revision."""
        self.con.execute(
            "UPDATE windows SET rows = rows + ?, start_us = least(start_us, ?),"
            " end_us = greatest(end_us, ?), revision = revision"
            " + CASE WHEN complete OR ? THEN 1 ELSE 0 END, complete = complete OR ?"
            " WHERE window_id = ?",
            [rows, start_us, end_us, complete, complete, window_id],
        )

    def add_windows(self, table: pa.Table) -> None:
        """New windows (the ``windows`` columns, in order)."""
        self.insert_arrow("windows", table)

    def add_window_counts(self, table: pa.Table) -> None:
        """Counts of windows' columns (the ``window_counts`` columns, in order)."""
        self.insert_arrow("window_counts", table)

    def take_window_counts(self, window_id: int) -> list[StoredCounts]:
        """A stored window's counts, removed (to be written back summed with new ones)."""
        rows = self.con.execute(
            f"SELECT {', '.join(StoredCounts._fields)} FROM window_counts WHERE window_id = ?",
            [window_id],
        ).fetchall()
        self.con.execute("DELETE FROM window_counts WHERE window_id = ?", [window_id])
        return [StoredCounts(*r) for r in rows]

    def add_window_flags(self, flags: list[tuple[int, str, int]]) -> None:
        """``(window_id, detector, detections)`` rows."""
        if flags:
            self.con.executemany("INSERT INTO window_flags VALUES (?, ?, ?)", flags)

    def pending_windows(self) -> list[WindowRow]:
        """Complete windows not computed since their last change, in stream order."""
        rows = self.con.execute(
            f"SELECT {', '.join(WindowRow._fields)} FROM windows"
            " WHERE complete AND computed_revision < revision"
            " ORDER BY model, version, route, seq"
        ).fetchall()
        return [WindowRow(*r) for r in rows]

    def window(self, window_id: int) -> WindowRow | None:
        row = self.con.execute(
            f"SELECT {', '.join(WindowRow._fields)} FROM windows WHERE window_id = ?",
            [window_id],
        ).fetchone()
        return WindowRow(*row) if row else None

    def window_totals(self, model: str, version: int | None) -> tuple[int, int]:
        """``(windows, rows)`` stored for a model (one version of it)."""
        row = self.con.execute(
            "SELECT count(*), coalesce(sum(rows), 0) FROM windows WHERE model = ?"
            + (" AND version = ?" if version is not None else ""),
            [model] if version is None else [model, version],
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)
