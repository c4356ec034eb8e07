"""Traffic figures from the prediction log (the data plane), computed with DuckDB.

The dashboard reads the same segments the monitor does
(``<logs>/predictions/model=<name>/date=<YYYY-MM-DD>/*.parquet``, ``registry.logschema``), so
its figures cover every gateway replica. Definitions, the same as ``mlgate rollout status``'s:

- a *request* is the ``request_id`` without a trailing ``/<digits>`` (row ``i`` of an ``n``-row
  request is logged as ``<request id>/<i>``);
- *errors*: requests with a server error (a row with ``status >= 500``); *client errors*: 4xx;
- *p50/p99*: percentiles (linear interpolation) of the request latency (``latency_us``, the
  same on every row of a request), all statuses included;
- *agreement* of a canary or shadow version: the share of its answered rows (status 200) whose
  prediction equals the champion route's on the same ``request_id`` (a shadow reuses the
  primary's id), whichever version was champion then (so a promoted shadow keeps the figures
  it earned against the old champion); regressors agree within ``rel_tol * |champion| +
  abs_tol``.

Only the date partitions that can hold rows of the window are listed, and only the columns a
figure needs are read; rate, errors and latency come from segments read once and kept
(``dashboard.segments``). No log store, or no segment yet, gives empty figures, never an
error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np
from fsspec.implementations.local import LocalFileSystem

from dashboard.segments import Group, Requests, SegmentIndex, quantiles_sorted
from registry.logschema import PREDICTIONS, ROUTE_CHAMPION

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True)
class RouteFigures:
    """One ``(route, version)`` of a model over a window of the log."""

    route: str
    version: int
    requests: int
    errors: int
    client_errors: int
    p50_ms: float
    p99_ms: float
    rate_per_s: float

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "version": self.version,
            "requests": self.requests,
            "errors": self.errors,
            "client_errors": self.client_errors,
            "error_rate": self.error_rate,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "rate_per_s": self.rate_per_s,
        }


_AGREEMENT = """
WITH rows AS (
    SELECT request_id, route, CAST(version AS BIGINT) AS version,
           CAST(prediction AS VARCHAR) AS pred_s, TRY_CAST(prediction AS DOUBLE) AS pred_d,
           epoch_us(ts) // $bucket_us AS bucket
    FROM read_parquet($files, union_by_name = true, hive_partitioning = false)
    WHERE ts >= $since AND ts <= $until AND status = 200
),
champ AS (
    SELECT request_id, any_value(version) AS version, any_value(pred_s) AS pred_s,
           any_value(pred_d) AS pred_d
    FROM rows WHERE route = 'champion' GROUP BY request_id
)
SELECT o.route, o.version, o.bucket, count(*),
       count(*) FILTER (WHERE CASE WHEN $numeric
           THEN abs(o.pred_d - c.pred_d) <= $rel_tol * abs(c.pred_d) + $abs_tol
           ELSE o.pred_s = c.pred_s END)
FROM rows o JOIN champ c USING (request_id)
WHERE o.route IN ('canary', 'shadow') AND o.version <> c.version
GROUP BY o.route, o.version, o.bucket ORDER BY o.route, o.version, o.bucket
"""


class LogReader:
    """Reads the prediction segments under ``logs_url`` (a path or an fsspec URL).

    Request rate, errors and latency come from a ``SegmentIndex`` that reads each segment
    once (``dashboard.segments``), so a refresh costs the new segments only; ``keep_s`` is the
    longest span asked for. Agreement joins rows on request ids and stays a DuckDB query.
    """

    def __init__(
        self,
        logs_url: str | None,
        *,
        storage_options: dict[str, Any] | None = None,
        threads: int = 2,
        keep_s: float = 3600.0,
    ) -> None:
        self.logs_url = logs_url
        self.storage_options = storage_options or {}
        self.threads = threads
        self.index = SegmentIndex(keep_s=keep_s)

    def _listing(self, model: str | None, since: datetime) -> dict[str, tuple[int, float]]:
        """Segments of ``model`` (every model when None) dated on or after ``since``'s day,
        with their size and modification time."""
        if not self.logs_url:
            return {}
        fs, root = fsspec.core.url_to_fs(self.logs_url, **self.storage_options)
        pattern = f"{str(root).rstrip('/')}/{PREDICTIONS}/model={model or '*'}/date=*/*.parquet"
        first_day = since.astimezone(UTC).date().isoformat()
        try:
            found = fs.glob(pattern, detail=True)
        except FileNotFoundError:
            return {}
        out: dict[str, tuple[int, float]] = {}
        for path, info in sorted(found.items()):
            path = str(path)
            day = path.rsplit("/date=", 1)[-1].split("/", 1)[0]
            if day >= first_day and not path.rsplit("/", 1)[-1].startswith("."):
                mtime = info.get("mtime") or info.get("LastModified") or 0.0
                if isinstance(mtime, datetime):
                    mtime = mtime.timestamp()
                out[path] = (int(info.get("size") or 0), float(mtime))
        return out

    def _refresh(self, model: str | None, since: datetime) -> dict[str, tuple[int, float]]:
        """List the segments and read the new ones into the index; returns the listing."""
        listing = self._listing(model, since)
        if self.logs_url:
            fs, root = fsspec.core.url_to_fs(self.logs_url, **self.storage_options)
            folder = f"{str(root).rstrip('/')}/{PREDICTIONS}/"
            prefix = folder + (f"model={model}/" if model else "")
            self.index.update(listing, fs.open, prefix=prefix)
        return listing

    def _qualified(self, paths: list[str]) -> list[str]:
        if not self.logs_url:
            return paths
        fs, _ = fsspec.core.url_to_fs(self.logs_url, **self.storage_options)
        if isinstance(fs, LocalFileSystem):
            return paths
        protocol = fs.protocol[0] if isinstance(fs.protocol, tuple) else fs.protocol
        return [p if "://" in p else f"{protocol}://{p}" for p in paths]

    def files(self, model: str | None, since: datetime) -> list[str]:
        """Segments of ``model`` (every model when None) dated on or after ``since``'s day."""
        return self._qualified(list(self._listing(model, since)))

    def requests(
        self, *, since: datetime, until: datetime, model: str | None = None
    ) -> dict[Group, Requests]:
        """Per ``(model, route, version)``, the requests logged between ``since`` and
        ``until``, after reading the segments not read before."""
        self._refresh(model, since)
        return self.index.requests(since_us=_us(since), until_us=_us(until), model=model)

    def _connect(self) -> duckdb.DuckDBPyConnection:
        import duckdb

        con = duckdb.connect(config={"threads": self.threads})
        if self.logs_url:
            fs, _ = fsspec.core.url_to_fs(self.logs_url, **self.storage_options)
            if not isinstance(fs, LocalFileSystem):
                con.register_filesystem(fs)
        return con

    def route_figures(
        self, *, window_s: float, now: datetime | None = None, model: str | None = None
    ) -> dict[str, list[RouteFigures]]:
        """Per model, figures per ``(route, version)`` over the last ``window_s`` seconds."""
        until = (now or datetime.now(UTC)).astimezone(UTC)
        since = until - timedelta(seconds=window_s)
        out: dict[str, list[RouteFigures]] = {}
        for (name, route, version), req in sorted(
            self.requests(since=since, until=until, model=model).items()
        ):
            n = len(req.ts)
            latency = np.sort(req.latency_us)
            out.setdefault(name, []).append(
                RouteFigures(
                    route=route,
                    version=version,
                    requests=n,
                    errors=int(np.count_nonzero(req.status >= 500)),
                    client_errors=int(np.count_nonzero((req.status >= 400) & (req.status < 500))),
                    p50_ms=quantiles_sorted(latency, 0.5) / 1000.0,
                    p99_ms=quantiles_sorted(latency, 0.99) / 1000.0,
                    rate_per_s=n / window_s,
                )
            )
        return out

    def series(
        self, model: str, *, window_s: float, buckets: int, now: datetime | None = None
    ) -> dict[str, Any]:
        """Requests, errors and p99 per route in ``buckets`` equal slices of the window."""
        until = (now or datetime.now(UTC)).astimezone(UTC)
        since = until - timedelta(seconds=window_s)
        bucket_us = max(1, int(window_s * 1e6 / buckets))
        first = _us(since) // bucket_us
        doc: dict[str, Any] = {
            "since": since.isoformat(timespec="seconds"),
            "until": until.isoformat(timespec="seconds"),
            "bucket_s": bucket_us / 1e6,
            "starts": [(first + i) * bucket_us / 1e6 for i in range(buckets + 1)],
            "routes": {},
        }
        by_route: dict[str, list[Requests]] = {}
        for (_, route, _), req in self.requests(since=since, until=until, model=model).items():
            by_route.setdefault(route, []).append(req)
        for route in sorted(by_route):
            req = Requests.concat(by_route[route])
            slot = req.ts // bucket_us - first
            keep = (slot >= 0) & (slot <= buckets)
            slot, status, latency = slot[keep], req.status[keep], req.latency_us[keep]
            requests = np.bincount(slot, minlength=buckets + 1)
            errors = np.bincount(slot, weights=status >= 500, minlength=buckets + 1)
            order = np.lexsort((latency, slot))
            slot, latency = slot[order], latency[order]
            bounds = np.searchsorted(slot, np.arange(buckets + 2))
            p99: list[float | None] = [None] * (buckets + 1)
            for i in np.flatnonzero(requests):
                p99[i] = quantiles_sorted(latency[bounds[i] : bounds[i + 1]], 0.99) / 1000.0
            doc["routes"][route] = {
                "requests": [int(n) for n in requests],
                "errors": [int(e) for e in errors],
                "p99_ms": p99,
            }
        return doc

    def agreement(
        self,
        model: str,
        *,
        champion: int | None,
        numeric: bool,
        window_s: float,
        buckets: int,
        now: datetime | None = None,
        rel_tol: float = 0.05,
        abs_tol: float = 1e-9,
    ) -> list[dict[str, Any]]:
        """Per canary/shadow version: rows compared with the champion, the share that agree,
        and the same per bucket of the window."""
        until = (now or datetime.now(UTC)).astimezone(UTC)
        since = until - timedelta(seconds=window_s)
        listing = self._refresh(model, since) if champion is not None else {}
        # segments whose requests all precede the window, and unreadable ones, are skipped
        low = _us(since)
        files = self._qualified(
            [
                p
                for p in listing
                if p not in self.index.unreadable
                and ((span := self.index.span(p)) is None or span[1] >= low)
            ]
        )
        if not files:
            return []
        bucket_us = max(1, int(window_s * 1e6 / buckets))
        first = int(since.timestamp() * 1e6) // bucket_us
        found: dict[tuple[str, int], dict[str, Any]] = {}
        con = self._connect()
        try:
            params = {
                "files": files,
                "since": since,
                "until": until,
                "bucket_us": bucket_us,
                "numeric": numeric,
                "rel_tol": rel_tol,
                "abs_tol": abs_tol,
            }
            for route, version, bucket, n, agreed in con.execute(_AGREEMENT, params).fetchall():
                item = found.setdefault(
                    (str(route), int(version)),
                    {
                        "route": str(route),
                        "version": int(version),
                        "compared": 0,
                        "agreed": 0,
                        "series": [None] * (buckets + 1),
                    },
                )
                item["compared"] += int(n)
                item["agreed"] += int(agreed)
                i = int(bucket) - first
                if 0 <= i <= buckets and n:
                    item["series"][i] = int(agreed) / int(n)
        finally:
            con.close()
        out = []
        for item in found.values():
            item["agreement"] = item["agreed"] / item["compared"] if item["compared"] else None
            out.append(item)
        return out


def _us(at: datetime) -> int:
    return int(at.timestamp() * 1e6)


def champion_first(figures: list[RouteFigures]) -> list[RouteFigures]:
    """Champion rows first, then canary, shadow and explicit, each by version.

    >>> f = RouteFigures("shadow", 2, 1, 0, 0, 1.0, 1.0, 0.1)
    >>> g = RouteFigures(ROUTE_CHAMPION, 1, 1, 0, 0, 1.0, 1.0, 0.1)
    >>> [x.route for x in champion_first([f, g])]
    ['champion', 'shadow']
    """
    order = {ROUTE_CHAMPION: 0, "canary": 1, "shadow": 2}
    return sorted(figures, key=lambda f: (order.get(f.route, 9), f.version))
