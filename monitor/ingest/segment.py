"""Reading one prediction segment with pyarrow: its groups, then bounded record batches.

The 32-odd numeric feature columns are the bulk of a segment; pyarrow decodes them straight
into numpy (zero copy for DOUBLE), which is several times cheaper than exporting them from a
DuckDB query. Batches of ``batch_rows`` keep memory bounded by a batch, not a segment or a row
group. The few columns that need SQL semantics (casts of non-numeric types) are computed by
DuckDB over the batch itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from registry import logschema

if TYPE_CHECKING:
    from collections.abc import Iterator

    import duckdb

# Each column chunk is read through a 256 KiB buffer rather than whole: Arrow then holds
# ~60 MiB for a 37-column segment of 131k-row row groups instead of ~90 MiB, at the same CPU
# time. (32k-row batches would save ~10 MiB more but cost ~15% more CPU in per-batch work.)
BATCH_ROWS = 65536
READ_BUFFER = 256 * 1024


class SegmentError(Exception):
    """A segment that cannot be used (foreign, corrupt, mismatched); recorded, not fatal."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


@dataclass(frozen=True)
class Group:
    """Rows of one (version, route) in a segment; ``version``/``route`` as stored."""

    version: Any
    route: Any
    rows: int


class SegmentFile:
    """One Parquet segment opened for reading (raises ``SegmentError`` when it is not one)."""

    def __init__(self, path: str, *, display: str) -> None:
        self.path = path
        self.display = display
        try:
            self.file = pq.ParquetFile(path, pre_buffer=False, buffer_size=READ_BUFFER)
            self.schema = self.file.schema_arrow
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise SegmentError(
                "corrupt_segment", f"{display}: not a readable Parquet file: {exc}"
            ) from exc
        self.types: dict[str, pa.DataType] = {f.name: f.type for f in self.schema}

    def close(self) -> None:
        self.file.close()

    @property
    def rows(self) -> int:
        return int(self.file.metadata.num_rows)

    def has_status(self) -> bool:
        return "status" in self.types

    def has_traffic(self) -> bool:
        return logschema.TRAFFIC_COLUMN in self.types

    def filter_columns(self) -> list[str]:
        """The columns ``ok_mask`` reads."""
        return [c for c in ("status", logschema.TRAFFIC_COLUMN) if c in self.types]

    def ok_mask(self, batch: pa.RecordBatch | pa.Table) -> pa.Array | None:
        """Rows the statistics count: served (``status < 400``; a null status is not served)
        real traffic (a null ``traffic``: load tests are left out); None: all rows."""
        masks = []
        if self.has_status():
            masks.append(pc.fill_null(pc.less(batch.column("status"), 400), False))
        if self.has_traffic():
            masks.append(pc.is_null(batch.column(logschema.TRAFFIC_COLUMN)))
        if not masks:
            return None
        mask = masks[0] if len(masks) == 1 else pc.and_(masks[0], masks[1])
        return mask if isinstance(mask, pa.Array) else mask.combine_chunks()

    def groups(self) -> list[Group]:
        """Served rows per (version, route), in first-seen order."""
        known = self._single_group()
        if known is not None:
            return [known]
        names = ["version", "route", *self.filter_columns()]
        table = self._read(names)
        mask = self.ok_mask(table)
        if mask is not None:
            table = table.filter(mask)
        if table.num_rows == 0:
            return []
        counted = table.group_by(["version", "route"], use_threads=False).aggregate(
            [([], "count_all")]
        )
        return [
            Group(version=v, route=r, rows=int(n))
            for v, r, n in zip(
                counted.column("version").to_pylist(),
                counted.column("route").to_pylist(),
                counted.column("count_all").to_pylist(),
                strict=True,
            )
        ]

    def _single_group(self) -> Group | None:
        """The one group of a segment whose row-group statistics prove it has only one.

        A gateway worker's segment usually holds one version and route, all served: the
        Parquet statistics (exact min = max, no nulls, status max < 400) say so without
        reading a row. Anything less certain returns None and the columns are read.
        """
        meta = self.file.metadata
        if meta.num_row_groups == 0:
            return None
        names = [meta.schema.column(i).path for i in range(meta.num_columns)]
        wanted = ["version", "route", *(["status"] if self.has_status() else [])]
        if any(names.count(n) != 1 for n in wanted):
            return None
        seen: set[tuple[Any, Any]] = set()
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            stats = {n: rg.column(names.index(n)).statistics for n in wanted}
            if any(st is None or not st.has_min_max or st.null_count != 0 for st in stats.values()):
                return None
            version, route = stats["version"], stats["route"]
            if version.min != version.max or route.min != route.max:
                return None
            if not isinstance(version.min, int) or not isinstance(route.min, str):
                return None
            if len(route.min) >= 32:  # writers may truncate long string statistics
                return None
            if "status" in stats:
                status = stats["status"]
                if not isinstance(status.max, int) or status.max >= 400:
                    return None
            seen.add((version.min, route.min))
        if len(seen) != 1 or not self._no_synthetic_rows():
            return None
        version_value, route_value = seen.pop()
        return Group(version=version_value, route=route_value, rows=self.rows)

    def _no_synthetic_rows(self) -> bool:
        """The statistics prove every ``traffic`` value is null (or there is no such column)."""
        if not self.has_traffic():
            return True
        meta = self.file.metadata
        names = [meta.schema.column(i).path for i in range(meta.num_columns)]
        if names.count(logschema.TRAFFIC_COLUMN) != 1:
            return False
        col = names.index(logschema.TRAFFIC_COLUMN)
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            stats = rg.column(col).statistics
            if stats is None or stats.null_count != rg.num_rows:
                return False
        return True

    def _read(self, columns: list[str]) -> pa.Table:
        try:
            return self.file.read(columns=columns, use_threads=False)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise SegmentError("corrupt_segment", f"{self.display}: read failed: {exc}") from exc

    def batches(
        self, columns: list[str], *, batch_rows: int = BATCH_ROWS
    ) -> Iterator[pa.RecordBatch]:
        try:
            yield from self.file.iter_batches(
                batch_size=batch_rows, columns=columns, use_threads=False
            )
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise SegmentError("corrupt_segment", f"{self.display}: read failed: {exc}") from exc


def group_mask(batch: pa.RecordBatch, group: Group, ok: pa.Array | None) -> pa.Array:
    """Rows of ``batch`` that belong to ``group`` (and were served)."""
    mask = pc.and_(
        pc.equal(batch.column("version"), pa.scalar(group.version, batch.column("version").type)),
        pc.equal(batch.column("route"), pa.scalar(group.route, batch.column("route").type)),
    )
    if ok is not None:
        mask = pc.and_(mask, ok)
    return pc.fill_null(mask, False)


def epoch_us(column: pa.Array, *, display: str) -> np.ndarray:
    """Microseconds since the epoch of a timestamp column (nulls take a neighbour's time)."""
    if not pa.types.is_timestamp(column.type):
        raise SegmentError(
            "foreign_segment", f"{display}: column 'ts': expected a timestamp, got {column.type}"
        )
    us = column.cast(pa.timestamp("us", column.type.tz), safe=False).cast(pa.int64())
    if us.null_count:
        us = pc.fill_null_backward(pc.fill_null_forward(us))
        if us.null_count:
            us = pc.fill_null(us, 0)
    return np.asarray(us.to_numpy(zero_copy_only=False), dtype=np.int64)


class Problem(NamedTuple):
    """Something wrong with part of a segment, recorded in ``problems`` (kind, detail)."""

    kind: str
    detail: str


def mistyped(types: dict[str, pa.DataType], numeric: list[str]) -> list[str]:
    """Which of the ``numeric`` columns a segment stores as something other than numbers.

    >>> mistyped({"in_a": pa.string(), "in_b": pa.float64()}, ["in_a", "in_b"])
    ["column 'in_a': expected a number, got string"]
    """
    return [
        f"column {name!r}: expected a number, got {str(types[name]).replace('large_', '')}"
        for name in numeric
        if name in types and not _plain_numeric(types[name])
    ]


def _plain_numeric(t: pa.DataType) -> bool:
    return bool(
        pa.types.is_floating(t)
        or pa.types.is_integer(t)
        or pa.types.is_boolean(t)
        or pa.types.is_decimal(t)
    )


def as_float(column: pa.Array, cur: duckdb.DuckDBPyConnection) -> np.ndarray:
    """``TRY_CAST(column AS DOUBLE)`` as float64, nulls as NaN (zero copy for DOUBLE)."""
    if pa.types.is_float64(column.type):
        out = column.to_numpy(zero_copy_only=False)
    elif _plain_numeric(column.type):
        out = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    else:
        out = _sql(cur, column, "TRY_CAST(c AS DOUBLE)").to_numpy(zero_copy_only=False)
    return np.asarray(out, dtype=np.float64)


def category_codes(
    column: pa.Array, categories: list[str], cur: duckdb.DuckDBPyConnection
) -> np.ndarray:
    """1 + position in ``categories`` (of the value as text), 0 unseen, -1 null; as float64."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        found = pc.index_in(column, value_set=pa.array(categories, column.type))
        codes = pc.fill_null(pc.add(found, 1), 0)
        codes = pc.if_else(column.is_null(), -1, codes)
    else:
        listed = "[" + ", ".join("'" + c.replace("'", "''") + "'" for c in categories) + "]"
        position = f"coalesce(list_position({listed}, c::VARCHAR), 0)"
        codes = _sql(cur, column, f"CASE WHEN c IS NULL THEN -1 ELSE {position} END")
    return np.asarray(codes.to_numpy(zero_copy_only=False), dtype=np.float64)


def request_hash_sql(column: str) -> str:
    """The join key of predictions and feedback, as SQL over a request-id column: both
    sides must hash the same way (``prediction_rows.rid``, ``feedback.rid``).

    >>> request_hash_sql("p.request_id")
    'hash(p.request_id::VARCHAR)'
    """
    return f"hash({column}::VARCHAR)"


def _sql(cur: duckdb.DuckDBPyConnection, column: pa.Array, expr: str) -> pa.Array:
    table = cur.from_arrow(pa.table({"c": column})).select(f"{expr} AS out").to_arrow_table()
    return table.column("out").combine_chunks()


def sql_list(values: list[str]) -> str:
    """A DuckDB list literal of strings (quotes doubled).

    >>> sql_list(["a", "it's"])
    "['a', 'it''s']"
    """
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"
