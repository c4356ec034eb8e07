"""The requests of the prediction log, kept in memory segment by segment.

Gateways only ever add segments (written once, atomically, never rewritten), so each segment
is read once: its requests' first rows (``registry.logschema``: every row of a request carries
its status and latency), only the columns the traffic figures need, grouped by
``(model, route, version)`` and sorted by time. A refresh lists the folders and reads only the
segments it has not seen; segments that left the span kept (or the store) are dropped. The
figures then cost a few array operations over the rows of the window, with no file read. A
segment that cannot be read is logged and left out (until it changes), never an error.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import NDArray

log = logging.getLogger(__name__)

Group = tuple[str, str, int]  # (model, route, version)

_COLUMNS = ("ts", "request_id", "model", "route", "version", "status", "latency_us")


@dataclass(frozen=True)
class Requests:
    """Requests of one group, oldest first: time (UTC µs), status and latency (µs)."""

    ts: NDArray[np.int64]
    status: NDArray[np.int64]
    latency_us: NDArray[np.float64]

    def between(self, since_us: int, until_us: int) -> Requests:
        """The requests with ``since_us <= ts <= until_us``."""
        lo = int(np.searchsorted(self.ts, since_us, side="left"))
        hi = int(np.searchsorted(self.ts, until_us, side="right"))
        if lo == 0 and hi == len(self.ts):
            return self
        return Requests(self.ts[lo:hi], self.status[lo:hi], self.latency_us[lo:hi])

    @staticmethod
    def concat(parts: list[Requests]) -> Requests:
        if len(parts) == 1:
            return parts[0]
        ts = np.concatenate([p.ts for p in parts])
        order = np.argsort(ts, kind="stable")
        return Requests(
            ts[order],
            np.concatenate([p.status for p in parts])[order],
            np.concatenate([p.latency_us for p in parts])[order],
        )


@dataclass(frozen=True)
class _Segment:
    stamp: tuple[int, float]  # size, mtime: a rewritten file is read again
    first_us: int
    last_us: int
    groups: dict[Group, Requests]


def _read(path: str, open_file: Callable[[str], Any]) -> dict[Group, Requests]:
    import polars as pl

    with open_file(path) as f:
        frame = pl.read_parquet(f, columns=list(_COLUMNS))
    rid = pl.col("request_id")
    frame = frame.filter(~rid.str.contains("/", literal=True) | rid.str.ends_with("/0")).select(
        pl.col("ts").dt.epoch("us").alias("ts"),
        pl.col("model").cast(pl.String),
        pl.col("route").cast(pl.String),
        pl.col("version").cast(pl.Int64, strict=False).fill_null(0),
        pl.col("status").cast(pl.Int64, strict=False).fill_null(0),
        pl.col("latency_us").cast(pl.Float64, strict=False).fill_null(0.0),
    )
    out: dict[Group, Requests] = {}
    for key, part in (
        frame.sort("ts")
        .partition_by(["model", "route", "version"], as_dict=True, maintain_order=True)
        .items()
    ):
        model, route, version = key
        out[(str(model), str(route), int(version))] = Requests(  # type: ignore[call-overload]
            part["ts"].to_numpy(), part["status"].to_numpy(), part["latency_us"].to_numpy()
        )
    return out


class SegmentIndex:
    """Per segment path, its requests grouped by ``(model, route, version)``.

    ``keep_s``: the rows of segments whose newest request is older than this are dropped (the
    longest span a figure asks for); the segment is remembered as read.
    """

    def __init__(self, *, keep_s: float) -> None:
        self.keep_s = keep_s
        self._segments: dict[str, _Segment] = {}
        self._lock = threading.Lock()
        self.reads = 0  # segments read so far (each is read once)
        self.unreadable: dict[str, str] = {}  # path -> why (left out of every figure)

    def update(
        self,
        listing: dict[str, tuple[int, float]],
        open_file: Callable[[str], Any],
        *,
        prefix: str | None = None,
    ) -> None:
        """Read the segments of ``listing`` (path -> (size, mtime)) not read yet; forget the
        ones under ``prefix`` (every one when None) that are no longer listed."""
        horizon = int((datetime.now(UTC).timestamp() - self.keep_s) * 1e6)
        with self._lock:
            for path in [p for p in self._segments if p not in listing]:
                if prefix is None or path.startswith(prefix):
                    del self._segments[path]
            for path, stamp in listing.items():
                known = self._segments.get(path)
                if known is not None and known.stamp == stamp:
                    continue
                try:
                    groups = _read(path, open_file)
                except Exception as exc:  # noqa: BLE001 - one bad file must not hide the rest
                    self.unreadable[path] = f"{type(exc).__name__}: {exc}"
                    log.warning("dashboard: segment %s is unreadable, left out: %s", path, exc)
                    groups = {}
                self.reads += 1
                firsts = [int(g.ts[0]) for g in groups.values() if len(g.ts)]
                lasts = [int(g.ts[-1]) for g in groups.values() if len(g.ts)]
                self._segments[path] = _Segment(
                    stamp, min(firsts, default=0), max(lasts, default=0), groups
                )
            for path, seg in self._segments.items():
                if seg.last_us < horizon and seg.groups:
                    # keep its stamp, drop its rows: still listed (today's folder), it would
                    # be read again on every refresh otherwise
                    self._segments[path] = _Segment(seg.stamp, seg.first_us, seg.last_us, {})

    def requests(
        self, *, since_us: int, until_us: int, model: str | None = None
    ) -> dict[Group, Requests]:
        """The requests between ``since_us`` and ``until_us`` (inclusive) per group."""
        parts: dict[Group, list[Requests]] = {}
        with self._lock:
            segments = list(self._segments.values())
        for seg in segments:
            if seg.last_us < since_us or seg.first_us > until_us:
                continue
            for key, rows in seg.groups.items():
                if model is not None and key[0] != model:
                    continue
                inside = rows.between(since_us, until_us)
                if len(inside.ts):
                    parts.setdefault(key, []).append(inside)
        return {key: Requests.concat(p) for key, p in parts.items()}

    def span(self, path: str) -> tuple[int, int] | None:
        """(first, last) request time of a segment read already, else None."""
        seg = self._segments.get(path)
        return (seg.first_us, seg.last_us) if seg is not None else None


def quantiles_sorted(values: NDArray[np.float64], q: float) -> float:
    """The ``q`` quantile of sorted ``values`` with linear interpolation (numpy's default,
    DuckDB's ``quantile_cont``).

    >>> quantiles_sorted(np.array([1.0, 2.0, 3.0, 4.0]), 0.5)
    2.5
    """
    if not len(values):
        return 0.0
    pos = (len(values) - 1) * q
    lo = int(np.floor(pos))
    hi = min(lo + 1, len(values) - 1)
    return float(values[lo] + (values[hi] - values[lo]) * (pos - lo))
