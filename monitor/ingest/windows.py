"""Cutting a version's row stream into windows, and storing each window's bin counts.

Row windows close after ``window_rows`` rows per model, version and route; time windows are
tumbling ``window_s`` intervals that close once a row ``lateness_s`` past their
end has been seen (a late row for a closed time window still lands in it, and the window is
computed again as a new revision).

Each window keeps one row of counts per column: cumulative fine counts (for KS and
Wasserstein), coarse counts (PSI, JS, chi-square), nulls and tail sums. Counts add up, so a
window fed by many segments, or a longer window made of many, is a sum — never a rescan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from monitor.stats.binning import BinCounts
from monitor.stats.profile import coarse_counts

if TYPE_CHECKING:
    from monitor.config import MonitorConfig
    from monitor.stats.profile import ColumnProfile
    from monitor.store import MonitorStore


@dataclass
class WindowPart:
    """What one segment adds to one window."""

    window_id: int
    seq: int
    time_key: int | None
    existing_rows: int
    stored: bool = False  # the window row already exists in the store
    rows: int = 0
    start_us: int | None = None
    end_us: int | None = None
    counts: dict[str, BinCounts] = field(default_factory=dict)
    flags: dict[str, int] = field(default_factory=dict)

    def span(self, ts_us: np.ndarray) -> None:
        if len(ts_us) == 0:
            return
        lo, hi = int(ts_us.min()), int(ts_us.max())
        self.start_us = lo if self.start_us is None else min(self.start_us, lo)
        self.end_us = hi if self.end_us is None else max(self.end_us, hi)


class WindowCutter:
    """Assigns rows of one (model, version, route) to windows, reading and writing the store."""

    def __init__(
        self, store: MonitorStore, config: MonitorConfig, model: str, version: int, route: str
    ) -> None:
        self.store = store
        self.config = config
        self.key = (model, version, route)
        self.parts: dict[int, WindowPart] = {}
        self.by_time: dict[int, WindowPart] = {}
        self.completed: set[int] = set()
        last_seq, self.watermark_us = store.stream_position(self.key)
        self.next_seq = last_seq + 1 if last_seq is not None else 1
        self.open: WindowPart | None = None
        if config.window_s is None:
            found = store.open_row_window(self.key)
            if found is not None:
                self.open = WindowPart(
                    window_id=found.window_id,
                    seq=found.seq,
                    time_key=None,
                    existing_rows=found.rows,
                    stored=True,
                )
                self.parts[self.open.window_id] = self.open

    def _new_part(self, time_key: int | None) -> WindowPart:
        part = WindowPart(
            window_id=self.store.next_window_id(),
            seq=self.next_seq,
            time_key=time_key,
            existing_rows=0,
        )
        self.next_seq += 1
        self.parts[part.window_id] = part
        return part

    def split_rows(self, n: int) -> list[tuple[WindowPart, int, int]]:
        """Row windows: ``[(part, start, stop)]`` covering ``n`` new rows in order."""
        out = []
        start = 0
        while start < n:
            if self.open is None:
                self.open = self._new_part(None)
            part = self.open
            room = self.config.window_rows - part.existing_rows - part.rows
            stop = min(n, start + room)
            out.append((part, start, stop))
            part.rows += stop - start
            if part.existing_rows + part.rows >= self.config.window_rows:
                self.completed.add(part.window_id)
                self.open = None
            start = stop
        return out

    def split_time(self, ts_us: np.ndarray) -> list[tuple[WindowPart, np.ndarray]]:
        """Time windows: ``[(part, row_indices)]`` grouped by tumbling interval."""
        assert self.config.window_s is not None
        width = int(self.config.window_s * 1_000_000)
        keys = ts_us // width
        out = []
        for key in np.unique(keys):
            idx = np.nonzero(keys == key)[0]
            part = self._time_part(int(key))
            part.rows += len(idx)
            out.append((part, idx))
        if len(ts_us):
            top = int(ts_us.max())
            self.watermark_us = top if self.watermark_us is None else max(self.watermark_us, top)
        return out

    def _time_part(self, key: int) -> WindowPart:
        if key in self.by_time:
            return self.by_time[key]
        row = self.store.time_window(self.key, key)
        if row is None:
            part = self._new_part(key)
        else:
            part = WindowPart(
                window_id=row.window_id,
                seq=row.seq,
                time_key=key,
                existing_rows=row.rows,
                stored=True,
            )
            self.parts[part.window_id] = part
        self.by_time[key] = part
        return part

    def close_time_windows(self) -> None:
        """Mark time windows whose end is ``lateness`` behind the watermark as complete."""
        if self.config.window_s is None or self.watermark_us is None:
            return
        width = int(self.config.window_s * 1_000_000)
        horizon = self.watermark_us - int(self.config.lateness_s * 1_000_000)
        for part in self.parts.values():
            if part.time_key is not None and (part.time_key + 1) * width <= horizon:
                self.completed.add(part.window_id)
        self._close_horizon = (width, horizon)

    def write(self, columns: dict[str, ColumnProfile]) -> None:
        """Persist windows and their counts (inside the caller's transaction)."""
        if self.config.window_s is not None and hasattr(self, "_close_horizon"):
            width, horizon = self._close_horizon
            self.store.close_time_windows(self.key, width, horizon)
        fresh = [p for p in self.parts.values() if p.rows and not p.stored]
        old = [p for p in self.parts.values() if p.rows and p.stored]
        for part in old:
            complete = part.window_id in self.completed
            self.store.grow_window(part.window_id, part.rows, part.start_us, part.end_us, complete)
        if fresh:
            done = [p.window_id in self.completed for p in fresh]
            self.store.add_windows(
                pa.table(
                    {
                        "window_id": pa.array([p.window_id for p in fresh], pa.int64()),
                        "model": pa.array([self.key[0]] * len(fresh), pa.string()),
                        "version": pa.array([self.key[1]] * len(fresh), pa.int64()),
                        "route": pa.array([self.key[2]] * len(fresh), pa.string()),
                        "seq": pa.array([p.seq for p in fresh], pa.int64()),
                        "time_key": pa.array([p.time_key for p in fresh], pa.int64()),
                        "start_us": pa.array([p.start_us for p in fresh], pa.int64()),
                        "end_us": pa.array([p.end_us for p in fresh], pa.int64()),
                        "rows": pa.array([p.rows for p in fresh], pa.int64()),
                        "complete": pa.array(done, pa.bool_()),
                        "revision": pa.array([1 if d else 0 for d in done], pa.int32()),
                        "computed_revision": pa.array([0] * len(fresh), pa.int32()),
                    }
                ),
            )
        self._merge_old(old, columns)
        write_counts(self.store, [p for p in [*fresh, *old] if p.counts], columns)
        flags = [(p.window_id, d, n) for p in [*fresh, *old] for d, n in p.flags.items()]
        self.store.add_window_flags(flags)

    def _merge_old(self, old: list[WindowPart], columns: dict[str, ColumnProfile]) -> None:
        """Fold the stored counts of re-opened windows into this segment's parts."""
        for part in old:
            for row in self.store.take_window_counts(part.window_id):
                acc = part.counts.get(row.name)
                if acc is None:
                    acc = part.counts[row.name] = BinCounts(len(row.cum))
                stored: np.ndarray = np.diff(np.asarray(row.cum, dtype=np.int64), prepend=0)
                if len(stored) == len(acc.counts):
                    acc.counts += stored
                acc.nulls += int(row.nulls)
                acc.under_sum += float(row.under_sum)
                acc.over_sum += float(row.over_sum)
                acc.total += float(row.total)
                acc.total_sq += float(row.total_sq)


def _list_array(arrays: list[np.ndarray]) -> pa.ListArray:
    offsets = np.concatenate([[0], np.cumsum([len(a) for a in arrays])]).astype(np.int32)
    values = np.concatenate(arrays) if arrays else np.zeros(0, np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values.astype(np.int32)))


# list values per insert: a segment of many small windows (1M rows in windows of 1,000 is
# 36,000 lists of ~1,000 bins) is written in pieces of ~4 MiB, not all at once (+540 MiB)
WRITE_VALUES = 1 << 20


def write_counts(
    store: MonitorStore, parts: list[WindowPart], columns: dict[str, ColumnProfile]
) -> None:
    """One ``window_counts`` row per (window, column), ~``WRITE_VALUES`` list values per
    insert."""
    ids: list[int] = []
    names: list[str] = []
    cums: list[np.ndarray] = []
    coarse: list[np.ndarray] = []
    scalars: list[tuple[int, float, float, float, float]] = []
    values = 0
    for part in parts:
        for name, acc in part.counts.items():
            col = columns.get(name)
            if col is None:
                continue
            ids.append(part.window_id)
            names.append(name)
            cums.append(np.cumsum(acc.counts).astype(np.int32))
            coarse.append(coarse_counts(acc.counts, col.coarse).astype(np.int32))
            scalars.append((acc.nulls, acc.under_sum, acc.over_sum, acc.total, acc.total_sq))
            values += len(acc.counts)
        if values >= WRITE_VALUES:
            _insert_counts(store, ids, names, cums, coarse, scalars)
            ids, names, cums, coarse, scalars, values = [], [], [], [], [], 0
    _insert_counts(store, ids, names, cums, coarse, scalars)


def _insert_counts(
    store: MonitorStore,
    ids: list[int],
    names: list[str],
    cums: list[np.ndarray],
    coarse: list[np.ndarray],
    scalars: list[tuple[int, float, float, float, float]],
) -> None:
    if not ids:
        return
    nulls, under, over, total, total_sq = (list(c) for c in zip(*scalars, strict=True))
    store.add_window_counts(
        pa.table(
            {
                "window_id": pa.array(ids, pa.int64()),
                "name": pa.array(names, pa.string()),
                "cum": _list_array(cums),
                "coarse": _list_array(coarse),
                "nulls": pa.array(nulls, pa.int64()),
                "under_sum": pa.array(under, pa.float64()),
                "over_sum": pa.array(over, pa.float64()),
                "total": pa.array(total, pa.float64()),
                "total_sq": pa.array(total_sq, pa.float64()),
            }
        ),
    )
