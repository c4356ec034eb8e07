"""One monitor pass: read new segments, compute complete windows, raise and deliver alerts.

``Monitor.run_once()`` is synchronous CPU and I/O work; ``MonitorService`` runs it off the
event loop. A failure in one model (or one segment) is recorded and counted and never stops
the others.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from monitor.alerts.decisions import degraded_event, events_for
from monitor.alerts.forward import forward_events
from monitor.alerts.outbox import AlertSender, HttpSender, Outbox
from monitor.clock import Clock, SystemClock
from monitor.compute.summaries import WindowSummary, compute_windows, refresh_performance
from monitor.config import EVENT_PERFORMANCE_DEGRADED, MonitorConfig
from monitor.ingest.feedback import ingest_feedback
from monitor.ingest.logstore import LogStore, Segment, relative_key
from monitor.ingest.predictions import PredictionIngestor, SegmentError
from monitor.ingest.references import RegistryReader, VersionContext, build_context
from monitor.metrics import MonitorMetrics
from monitor.store import MonitorStore
from monitor.store.rows import SegmentRow
from registry import logschema

if TYPE_CHECKING:
    from pathlib import Path

    from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)


@dataclass
class PassResult:
    """What one pass did (also what ``mlgate monitor run --once`` prints)."""

    segments: int = 0
    rows: int = 0
    windows: int = 0
    events: list[str] = field(default_factory=list)
    problems: int = 0
    delivered: int = 0
    recorded: int = 0
    forwarded: list[str] = field(default_factory=list)
    pending_alerts: int = 0


class Monitor:
    """The drift monitor over one registry and one log store, with state in one DuckDB file."""

    def __init__(
        self,
        registry: RegistryReader,
        logs: str,
        *,
        db: str | Path,
        config: MonitorConfig | None = None,
        clock: Clock | None = None,
        sender: AlertSender | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self.registry = registry
        self.config = config or MonitorConfig()
        self.clock = clock or SystemClock()
        self.store = MonitorStore(
            db, threads=self.config.duckdb_threads, memory_limit=self.config.duckdb_memory_limit
        )
        self.logs = LogStore(logs, storage_options=storage_options)
        self.metrics = MonitorMetrics()
        self._own_sender = sender is None
        self.sender: AlertSender = sender or HttpSender(timeout_s=self.config.webhook_timeout_s)
        self.outbox = Outbox(
            self.store, self.config, clock=self.clock, sender=self.sender, recorder=registry
        )
        self.ingestor = PredictionIngestor(self.store, self.config)
        self._contexts: dict[tuple[str, int], VersionContext] = {}
        # builds predictions' profiles (model load + scoring) while segments are counted
        self._profiles = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlgate-profile")
        self._reported: set[str] = set()
        self._degraded: list[tuple[str, int, str, int, int]] = []
        self._pruned_at = float("-inf")
        self._keys_migrated = False

    @property
    def collector_registry(self) -> CollectorRegistry:
        """Prometheus registry with this monitor's gauges (the lead mounts it on /metrics)."""
        return self.metrics.registry

    def close(self) -> None:
        if self._own_sender and isinstance(self.sender, HttpSender):
            self.sender.close()
        self.ingestor.close()
        self._profiles.shutdown(wait=True)
        self.store.close()

    # -- problems ---------------------------------------------------------------------------
    def _problem(
        self,
        kind: str,
        detail: str,
        result: PassResult,
        *,
        once: str | None = None,
        model: str | None = None,
        version: int | None = None,
        path: str | None = None,
    ) -> None:
        if once is not None:
            if once in self._reported:
                return
            self._reported.add(once)
        log.warning("monitor: %s: %s", kind, detail)
        self.store.record_problem(
            ts=self.clock.time(), kind=kind, detail=detail, model=model, version=version, path=path
        )
        self.metrics.problems.labels(kind).inc()
        result.problems += 1

    # -- the pass ---------------------------------------------------------------------------
    def run_once(self) -> PassResult:
        """Ingest everything new, compute complete windows, queue and deliver alerts."""
        result = PassResult()
        with self.store.lock:
            try:
                models = set(self.registry.list())
            except Exception as exc:  # noqa: BLE001 - registry outage: record, retry next pass
                self._problem("registry_unavailable", f"{type(exc).__name__}: {exc}", result)
                models = set()
            self._migrate_segment_keys()
            self._ingest_kind(logschema.PREDICTIONS, models, result)
            self._ingest_kind(logschema.FEEDBACK, models, result)
            self._compute(result)
            self._forward(models, result)
            self._deliver(result)
            self._prune()
            if self.config.release_between_passes:
                self.store.release()
        return result

    def _prune(self) -> None:
        """Forget prediction rows older than the label horizon (hourly: it scans them all)."""
        now = self.clock.time()
        if now - self._pruned_at < 3600:
            return
        self._pruned_at = now
        before_us = int((now - self.config.label_horizon_s) * 1e6)
        self.store.prune_prediction_rows(before_us)
        # a label older than the horizon can never meet its prediction again (those rows are
        # gone or go at the same age): labels for unknown request ids do not pile up forever
        self.store.prune_feedback(before_us)

    def _ingest_kind(self, kind: str, models: set[str], result: PassResult) -> None:
        try:
            segments = self.logs.list(kind)
        except Exception as exc:  # noqa: BLE001 - log store outage: record, retry next pass
            self._problem("logs_unavailable", f"{self.logs.url}/{kind}: {exc}", result)
            return
        known = self.store.segments(kind)
        for seg in segments:
            seen = known.get(seg.key)
            if seen is not None:
                if (seen.size, seen.mtime_ns) != (seg.size, seg.mtime_ns):
                    if self._same_content(seg, seen):
                        # copied or moved with the store (a new time, the same bytes)
                        self.store.record_segment(seen._replace(mtime_ns=seg.mtime_ns))
                        continue
                    if seen.status in ("corrupt_segment", "foreign_segment"):
                        self.store.forget_segment(seg.key)
                    else:
                        self._problem(
                            "segment_changed",
                            f"{seg.path}: changed after it was"
                            " read; not read again (rows would count twice)",
                            result,
                            once=f"changed:{seg.path}",
                            path=seg.path,
                        )
                        continue
                else:
                    continue
            self._ingest_one(seg, models, result)

    def _same_content(self, seg: Segment, seen: SegmentRow) -> bool:
        if seen.fingerprint is None or seen.size != seg.size:
            return False
        try:
            return self.logs.fingerprint(seg) == seen.fingerprint
        except OSError:
            return False  # unreadable now: treated as changed, reported below

    def _migrate_segment_keys(self) -> None:
        """Segments recorded by an older monitor are keyed by their absolute path: rekey them
        by their path relative to the log store (once; a no-op after)."""
        if self._keys_migrated:
            return
        moves = [
            (path, relative_key(path, kind))
            for path, kind in self.store.segment_paths()
            if relative_key(path, kind) != path
        ]
        if moves:
            self.store.rekey_segments(moves)
            log.info("monitor: %d segment keys made relative to the log store", len(moves))
        self._keys_migrated = True

    def _ingest_one(self, seg: Segment, models: set[str], result: PassResult) -> None:
        now = self.clock.time()
        if not seg.is_parquet or seg.model is None:
            self._reject(
                seg,
                "foreign_file",
                f"{seg.path}: not a <model=NAME>/…/*.parquet segment; ignored",
                result,
            )
            return
        if seg.model not in models:
            self._problem(
                "unknown_model",
                f"{seg.path}: model {seg.model!r} is not in the"
                " registry; segment left unread until it is",
                result,
                once=f"unknown:{seg.model}",
                model=seg.model,
            )
            return
        try:
            seg = dataclasses.replace(seg, fingerprint=self.logs.fingerprint(seg))
            with self.logs.local_copy(seg) as local:
                if seg.kind == logschema.PREDICTIONS:
                    rows, problems = self.ingestor.ingest(
                        seg, local, lambda v: self._context(seg.model or "", v), now=now
                    )
                    for p in problems:
                        self._problem(p.kind, p.detail, result, model=seg.model, path=seg.path)
                    self.metrics.rows.labels(seg.model).inc(rows)
                    result.rows += rows
                else:
                    for version, route, wid, n in ingest_feedback(self.store, seg, local, now=now):
                        self._degraded.append((seg.model or "", version, route, wid, n))
        except SegmentError as exc:
            self._reject(seg, exc.kind, str(exc), result)
            return
        except Exception as exc:  # noqa: BLE001 - one bad segment never stops the pass
            self._problem(
                "segment_failed",
                f"{seg.path}: {type(exc).__name__}: {exc}",
                result,
                once=f"failed:{seg.path}:{seg.size}",
                model=seg.model,
                path=seg.path,
            )
            return
        # a segment that failed on an earlier pass and was read now is no longer a problem
        self.store.resolve_problems("segment_failed", seg.path)
        self.metrics.segments.labels(seg.kind, "ok").inc()
        result.segments += 1

    def _reject(self, seg: Segment, kind: str, detail: str, result: PassResult) -> None:
        """Remember a segment we cannot use (so it is not re-read unless it changes)."""
        self._problem(kind, detail, result, model=seg.model, path=seg.path)
        self.metrics.segments.labels(seg.kind, kind).inc()
        self.store.record_segment(
            SegmentRow(seg.key, seg.kind, seg.model, seg.size, seg.mtime_ns, 0, kind, detail,
                       self.clock.time(), seg.fingerprint)
        )  # fmt: skip

    def _context(self, model: str, version: int) -> VersionContext | None:
        key = (model, version)
        if key in self._contexts:
            return self._contexts[key]
        mv = next((m for m in self.registry.versions(model) if int(m.version) == version), None)
        if mv is None:
            return None
        ctx = build_context(
            self.registry,
            mv,
            store=self.store,
            config=self.config,
            now=self.clock.time(),
            executor=self._profiles,
        )
        self.store.save_version(
            model,
            version,
            profile_id=ctx.profile.profile_id if ctx.profile else None,
            prediction_profile_id=(
                ctx.prediction_profile.profile_id if ctx.prediction_profile else None
            ),
            task=ctx.task,
            classes=ctx.classes,
            features=ctx.feature_names,
            status="ok",
        )
        self._contexts[key] = ctx
        return ctx

    def _compute(self, result: PassResult) -> None:
        now = self.clock.time()
        for ctx in self._contexts.values():
            ctx.settle(self.store, now=now)  # normally done by the ingestor already

        try:
            summaries = compute_windows(
                self.store, self.config, now=now, on_chunk=lambda c: self._queue(c, result)
            )
        except Exception as exc:  # noqa: BLE001 - recorded; the windows stay pending
            self._problem("compute_failed", f"{type(exc).__name__}: {exc}", result)
            summaries = []
        latest: dict[tuple[str, int, str], WindowSummary] = {}
        for s in summaries:
            latest[(s.model, s.version, s.route)] = s
        for s in latest.values():
            self.metrics.observe_window(s)
        for key, count in Counter((s.model, s.version, s.route) for s in summaries).items():
            self.metrics.windows.labels(key[0], str(key[1]), key[2]).inc(count)
        result.windows += len(summaries)
        try:
            changed = refresh_performance(self.store, now=now, min_labels=self.config.min_labels)
            for wid, perf in changed:
                w = self.store.window(wid)
                if w is not None:
                    self.metrics.observe_performance((w.model, w.version, w.route), perf)
        except Exception as exc:  # noqa: BLE001
            self._problem("performance_failed", f"{type(exc).__name__}: {exc}", result)
        events: list[tuple[str, dict[str, Any]]] = []
        for model, version, route, wid, n in self._degraded:
            data = degraded_event(self.store, model, version, route, wid, n, self.config)
            events.append((EVENT_PERFORMANCE_DEGRADED, data))
        self._degraded.clear()
        for event_type, data in events:
            self.outbox.enqueue(event_type, data)
            result.events.append(event_type)

    def _queue(self, chunk: list[WindowSummary], result: PassResult) -> None:
        """Queue the drift alerts of a chunk of windows: inside the transaction that stores
        their summaries (``compute_windows``), so a kill in between loses neither."""
        for event_type, data in events_for(self.store, chunk, self.config):
            self.outbox.enqueue(event_type, data)
            result.events.append(event_type)

    def _forward(self, models: set[str], result: PassResult) -> None:
        """Queue the registry's new ``rollout.*`` / ``trainer.*`` events for the webhooks."""
        for model in sorted(models):
            try:
                kinds = forward_events(self.registry, self.store, self.outbox, [model])
            except Exception as exc:  # noqa: BLE001 - registry outage: the cursor stays put
                self._problem(
                    "forward_failed", f"{model}: {type(exc).__name__}: {exc}", result, model=model
                )
                continue
            result.forwarded.extend(kinds)

    def _deliver(self, result: PassResult) -> None:
        outcome = self.outbox.deliver_due()
        for name, n in outcome.items():
            if n:
                self.metrics.deliveries.labels(name).inc(n)
        result.delivered += outcome["delivered"]
        result.recorded += outcome["recorded"]
        result.pending_alerts = self.outbox.pending()
        self.metrics.outbox_pending.set(result.pending_alerts)

    def deliver(self) -> dict[str, int]:
        """Deliver due alerts only (between passes)."""
        with self.store.lock:
            return self.outbox.deliver_due()
