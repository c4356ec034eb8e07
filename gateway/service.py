"""The request path, free of HTTP: route, validate, batch, log, metrics, shadows.

``Gateway.predict`` takes a parsed payload and a model name and returns a ``Prediction``; the
protocol handlers encode it. Shadow copies are queued after the primary answer is built (on
the next turn of the loop), bounded, never awaited by the request.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

from gateway import router
from gateway.answered import AnsweredIds
from gateway.errors import (
    BadRequest,
    GatewayError,
    InferenceFailed,
    Overloaded,
    RequestTimeout,
    ShuttingDown,
    status_for,
)
from gateway.feedback_process import FeedbackProcess
from gateway.liveness import GatewayReporter
from gateway.logwriter import FeedbackBatch, LogWriter, PredictionRecord, default_worker_id
from gateway.metrics import GatewayMetrics, counter
from gateway.models import LoadedVersion, ModelManager, ModelState
from registry.logschema import (
    FEEDBACK,
    LOADTEST_TRAFFIC,
    PREDICTIONS,
    ROUTE_SHADOW,
    TRAFFIC_HEADER,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import numpy as np
    from prometheus_client.metrics_core import Metric

    from gateway.batcher import Answers, BatchResult
    from gateway.codecs import Payload
    from gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


class Prediction:
    """A served request: which version answered, on which route, and its outputs."""

    __slots__ = ("loaded", "outputs", "request_id", "route")

    def __init__(
        self, loaded: LoadedVersion, route: str, request_id: str, outputs: dict[str, np.ndarray]
    ) -> None:
        self.loaded = loaded
        self.route = route
        self.request_id = request_id
        self.outputs = outputs

    @property
    def model(self) -> str:
        return self.loaded.model

    @property
    def version(self) -> int:
        return self.loaded.version


class Service(Protocol):
    """A companion front of the gateway (the gRPC server): ``Gateway.start`` starts it on the
    worker's event loop once the models are loading, ``Gateway.aclose`` closes it first."""

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


TRAFFIC_VALUE = re.compile(r"[A-Za-z0-9._-]{1,32}")


def traffic_tag(value: str | None) -> str | None:
    """The synthetic-traffic tag of a request (the ``X-Mlgate-Traffic`` header), checked.

    >>> traffic_tag("loadtest"), traffic_tag(None), traffic_tag("")
    ('loadtest', None, None)
    """
    if not value:
        return None
    if TRAFFIC_VALUE.fullmatch(value) is None:
        raise BadRequest(
            f"header {TRAFFIC_HEADER}: expected 1-32 letters, digits, '.', '_' or '-' "
            f"(e.g. {LOADTEST_TRAFFIC}), got {value[:40]!r}"
        )
    return value


class Pending:
    """A request queued for a batch (``Gateway.submit``), waiting for ``Gateway.finish``.
    It is also the batcher's tag: ``logged`` is set once its answer is in the log."""

    __slots__ = ("X", "future", "key", "loaded", "logged", "request_id", "route", "start",
                 "state", "timer", "traffic")  # fmt: skip

    def __init__(
        self,
        state: ModelState | None,
        loaded: LoadedVersion,
        route: str,
        request_id: str,
        key: str,
        X: np.ndarray,
        start: int,
        traffic: str | None = None,
    ) -> None:
        self.state = state  # set when shadow copies may be due
        self.traffic = traffic  # synthetic traffic (X-Mlgate-Traffic), logged as such
        self.loaded = loaded
        self.route = route
        self.request_id = request_id
        self.key = key
        self.X = X
        self.start = start
        self.logged = False
        self.future: asyncio.Future[BatchResult]
        self.timer: asyncio.TimerHandle


def _expire(
    future: asyncio.Future[BatchResult], loaded: LoadedVersion, settings: GatewaySettings
) -> None:
    if not future.done():
        future.set_exception(
            RequestTimeout(
                f"model {loaded.model!r} version {loaded.version}: no answer within "
                f"request_timeout_s={settings.request_timeout_s}"
            )
        )


FEEDBACK_SLICE = 1024  # labels of a feedback request logged (and journaled, ~50 kB) together


class FeedbackResult:
    """The answer to a feedback request: labels received, accepted into the log (those that
    fit its buffer), and matched to a prediction this worker answered recently (the rest:
    unmatched)."""

    __slots__ = ("accepted", "matched", "received")

    def __init__(self, received: int, accepted: int, matched: int) -> None:
        self.received = received
        self.accepted = accepted
        self.matched = matched

    def as_dict(self) -> dict[str, int]:
        """>>> FeedbackResult(3, 3, 2).as_dict()
        {'received': 3, 'accepted': 3, 'matched': 2, 'unmatched': 1}
        """
        return {
            "received": self.received,
            "accepted": self.accepted,
            "matched": self.matched,
            "unmatched": self.received - self.matched,
        }


class Gateway:
    """Composition of models, batchers, log writer and metrics for one worker process."""

    def __init__(
        self,
        registry: Any,
        *,
        settings: GatewaySettings,
        logs_url: str | None,
        metrics: GatewayMetrics | None = None,
        load_runtime: Callable[..., Any] | None = None,
        log_storage_options: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or GatewayMetrics()
        self.executor = ThreadPoolExecutor(settings.threads, thread_name_prefix="mlgate-infer")
        # one id per worker process: its log segments and its registry report share it
        self.worker_id = settings.worker_id or default_worker_id()
        self.models = ModelManager(
            registry,
            settings=settings,
            metrics=self.metrics,
            executor=self.executor,
            load_runtime=load_runtime,
            reporter=GatewayReporter(registry, self.worker_id),
            on_answer=self._log_answers,
        )
        self.registry = registry
        self.logs_url = logs_url
        self.log: LogWriter | None = None
        if logs_url is not None and settings.log_predictions:
            self.log = LogWriter(
                logs_url,
                worker_id=self.worker_id,
                flush_rows=settings.log_flush_rows,
                flush_interval_s=settings.log_flush_interval_s,
                buffer_rows=settings.log_buffer_rows,
                compression=settings.log_compression,
                storage_options=log_storage_options,
                journal_dir=journal_dir(settings, logs_url) if settings.log_journal else None,
                journal_fsync=settings.log_journal_fsync,
            )
        # large feedback requests are parsed and written by a helper process (started on use)
        self.feedback_process: FeedbackProcess | None = None
        if logs_url is not None and self.log is not None and settings.feedback_process_bytes:
            self.feedback_process = FeedbackProcess(
                logs_url,
                worker_id=self.worker_id,
                compression=settings.log_compression,
                storage_options=log_storage_options,
            )
        # generated request ids: a random per-process prefix and a counter (unique, and far
        # cheaper than a getrandom() call per request)
        self._id_prefix = os.urandom(6).hex()
        self._id_counter = itertools.count()
        # answered request ids per model, to tell feedback labels that match a logged row
        self._answered: dict[str, AnsweredIds] = {}
        self._shadow_rows = 0
        self._shadow_tasks: set[asyncio.Future[Any]] = set()
        self._closing = False
        self._services: list[Service] = []
        self.started = False
        self.metrics.add_collector(self._collect)

    @property
    def closing(self) -> bool:
        return self._closing

    # -- lifecycle ----------------------------------------------------------------------------
    def add_service(self, service: Service) -> None:
        """Run ``service`` with this gateway: same loop, batchers, limits, log and metrics."""
        self._services.append(service)

    async def start(self) -> None:
        """Start the log writer and load the routed versions (process-wide tuning is the
        composition root's: ``mlgate.process``)."""
        if self.log is not None:
            await asyncio.to_thread(self.log.start)  # replays a killed worker's journal first
        await self.models.start()
        for service in self._services:
            await service.start()
        self.started = True

    async def aclose(self) -> None:
        """Drain: close the companion fronts (they finish their in-flight requests), finish
        queued requests and shadows, stop watching, flush the log."""
        for service in reversed(self._services):
            await service.aclose()
        self._closing = True
        if self._shadow_tasks:
            await asyncio.wait(self._shadow_tasks, timeout=self.settings.drain_timeout_s)
        await self.models.aclose()
        if self.log is not None:
            await asyncio.to_thread(self.log.close)
        if self.feedback_process is not None:
            self.feedback_process.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    # -- prediction ---------------------------------------------------------------------------
    def state(self, model: str) -> ModelState:
        return self.models.get(model)

    async def predict(
        self,
        model: str,
        payload: Payload,
        *,
        version: int | None = None,
        request_id: str | None = None,
        routing_key: str | None = None,
        started_ns: int | None = None,
        traffic: str | None = None,
    ) -> Prediction:
        """Route, validate and run one request; raises ``GatewayError`` subclasses.
        ``traffic``: the request is synthetic (a load test); its rows are logged as such."""
        pending = self.submit(
            model,
            payload,
            version=version,
            request_id=request_id,
            routing_key=routing_key,
            started_ns=started_ns,
            traffic=traffic,
        )
        try:
            await pending.future
        except GatewayError:
            pass  # finish() counts it and raises it
        except asyncio.CancelledError:
            pending.timer.cancel()
            raise
        return self.finish(pending)

    def submit(
        self,
        model: str,
        payload: Payload,
        *,
        version: int | None = None,
        request_id: str | None = None,
        routing_key: str | None = None,
        started_ns: int | None = None,
        traffic: str | None = None,
    ) -> Pending:
        """The first half of ``predict``, without a coroutine: route, validate and queue the
        request; ``finish`` is the second, once ``pending.future`` is done."""
        start = started_ns or time.perf_counter_ns()
        if self._closing:
            raise ShuttingDown("the gateway is shutting down")
        request_id = request_id or self._new_request_id()
        state = self.models.get(model)
        key = routing_key or request_id
        if version is None:
            loaded, route = state.choose(key)
        else:
            loaded, route = state.explicit(version)
        batcher = loaded.batcher
        assert batcher is not None
        try:
            X = payload.to_matrix(loaded.inputs, loaded.outputs)
            if X.shape[0] > self.settings.max_request_rows:
                raise BadRequest(
                    f"inputs: expected at most max_request_rows={self.settings.max_request_rows} "
                    f"rows, got {X.shape[0]}"
                )
            shadow = version is None and state.serving_route is not None
            pending = Pending(state if shadow else None, loaded, route, request_id, key, X, start,
                              traffic)  # fmt: skip
            future = pending.future = batcher.submit(X, pending)
        except GatewayError as exc:
            self._record(loaded, route, request_id, status_for(exc), start, traffic=traffic)
            raise
        # a timer that fails the future, cheaper than asyncio.timeout's context per request;
        # the batcher skips (queued) or ignores (computing) a request whose future is done
        pending.timer = asyncio.get_running_loop().call_later(
            self.settings.request_timeout_s, _expire, future, loaded, self.settings
        )
        return pending

    def finish(self, pending: Pending) -> Prediction:
        """The second half of ``predict``: count and log the answer, send shadow copies.
        Raises the request's ``GatewayError`` if it failed (timed out, model error…)."""
        pending.timer.cancel()
        future = pending.future
        loaded = pending.loaded
        exc = future.exception()
        if exc is not None:
            self._record(loaded, pending.route, pending.request_id, status_for(exc), pending.start,
                         traffic=pending.traffic)  # fmt: skip
            raise exc
        result = future.result()
        X = pending.X
        self._record(loaded, pending.route, pending.request_id, 200, pending.start, X, result,
                     logged=pending.logged, traffic=pending.traffic)  # fmt: skip
        state = pending.state
        if state is not None and state.serving_route is not None and state.serving_route.shadows:
            shadows = router.shadow_versions(state.serving_route, pending.key)
            if shadows:
                asyncio.get_running_loop().call_soon(
                    self._send_shadows,
                    state,
                    loaded,
                    shadows,
                    X,
                    pending.request_id,
                    pending.traffic,
                )
        return Prediction(loaded, pending.route, pending.request_id, result.outputs)

    def _new_request_id(self) -> str:
        return f"{self._id_prefix}{next(self._id_counter):012x}"

    def rejected(self, model: str, exc: BaseException) -> None:
        """Count a request refused before it reached a version (unreadable body): labels
        ``version=""``, ``route=""``; only for served models (bounded label values)."""
        if model in self.models.states:
            self.metrics.observe_request(model, "", "", status_for(exc), total_s=0.0)

    def _record(
        self,
        loaded: LoadedVersion,
        route: str,
        request_id: str,
        status: int,
        start: int,
        X: np.ndarray | None = None,
        result: BatchResult | None = None,
        *,
        logged: bool = False,
        traffic: str | None = None,
    ) -> None:
        """Count and log one answered request (``result`` given) or failed one; ``logged``:
        its row is in the log already (``_log_answers``)."""
        total_ns = time.perf_counter_ns() - start
        self.metrics.observe_request(
            loaded.model,
            loaded.version,
            route,
            status,
            total_s=total_ns / 1e9,
            queue_s=result.queue_ns / 1e9 if result is not None else None,
            compute_s=result.compute_ns / 1e9 if result is not None else None,
            rows=X.shape[0] if X is not None else 0,
        )
        if result is not None and route != ROUTE_SHADOW and self.log is not None:
            self.answered_ids(loaded.model).add(request_id, X.shape[0] if X is not None else 1)
        if self.log is not None and not logged:
            self.log.append(
                PredictionRecord(
                    ts_us=time.time_ns() // 1000,
                    request_id=request_id,
                    model=loaded.model,
                    version=loaded.version,
                    route=route,
                    layout=loaded.layout,
                    X=X if result is not None else None,
                    outputs=result.outputs if result is not None else None,
                    latency_us=total_ns // 1000,
                    batch_rows=result.batch_rows if result is not None else 0,
                    status=status,
                    traffic=traffic,
                )
            )

    def _log_answers(self, loaded: LoadedVersion, batch: Answers) -> None:
        """The batcher's ``on_answer``: a batch's answered rows go to the log (and its crash
        journal, in one write) before any of its answers is released. ``latency_us`` is then
        the time from the request's arrival to its batch's answer."""
        if self.log is None:
            return
        now_ns = time.perf_counter_ns()
        ts_us = time.time_ns() // 1000
        records = []
        tags = []
        for tag, X, result in batch.answers:
            assert isinstance(tag, Pending)
            records.append(
                PredictionRecord(
                    ts_us=ts_us,
                    request_id=tag.request_id,
                    model=loaded.model,
                    version=loaded.version,
                    route=tag.route,
                    layout=loaded.layout,
                    X=X,
                    outputs=result.outputs,
                    latency_us=(now_ns - tag.start) // 1000,
                    batch_rows=result.batch_rows,
                    status=200,
                    traffic=tag.traffic,
                )
            )
            tags.append(tag)
        whole = (batch.X, batch.outputs) if batch.X is not None and batch.outputs else None
        self.log.append_many(records, batch=whole)  # refused rows are counted as dropped
        for tag in tags:
            tag.logged = True

    # -- shadows ------------------------------------------------------------------------------
    def _send_shadows(
        self,
        state: ModelState,
        primary: LoadedVersion,
        versions: list[int],
        X: np.ndarray,
        request_id: str,
        traffic: str | None = None,
    ) -> None:
        for version in versions:
            if version == primary.version:
                continue
            shadow = state.versions.get(version)
            reason = None
            if shadow is None or shadow.batcher is None:
                reason = "not_loaded"
            elif not shadow.inputs.same_inputs(primary.inputs):
                reason = "other_inputs"
            elif self._closing:
                reason = "shutting_down"
            elif self._shadow_rows + X.shape[0] > self.settings.shadow_max_inflight_rows:
                reason = "queue_full"
            if reason is not None:
                self.metrics.shadow_dropped.labels(state.name, reason).inc()
                continue
            assert shadow is not None and shadow.batcher is not None
            tag = Pending(None, shadow, ROUTE_SHADOW, request_id, request_id, X,
                          time.perf_counter_ns(), traffic)  # fmt: skip
            try:
                future = shadow.batcher.submit(X, tag)
            except (Overloaded, ShuttingDown):
                self.metrics.shadow_dropped.labels(state.name, "queue_full").inc()
                continue
            self._shadow_rows += X.shape[0]
            self._shadow_tasks.add(future)
            future.add_done_callback(functools.partial(self._shadow_done, tag=tag))

    def _shadow_done(self, future: asyncio.Future[BatchResult], *, tag: Pending) -> None:
        shadow, X = tag.loaded, tag.X
        self._shadow_rows -= X.shape[0]
        self._shadow_tasks.discard(future)
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            self._record(shadow, ROUTE_SHADOW, tag.request_id, status_for(exc), tag.start,
                         traffic=tag.traffic)  # fmt: skip
            if not isinstance(exc, InferenceFailed | ShuttingDown):
                log.warning("shadow %s:%d failed: %r", shadow.model, shadow.version, exc)
            return
        self._record(shadow, ROUTE_SHADOW, tag.request_id, 200, tag.start, X, future.result(),
                     logged=tag.logged, traffic=tag.traffic)  # fmt: skip

    # -- feedback -----------------------------------------------------------------------------
    def answered_ids(self, model: str) -> AnsweredIds:
        """The request ids of ``model`` this worker answered recently (``feedback_match_ids``)."""
        ids = self._answered.get(model)
        if ids is None:
            ids = self._answered[model] = AnsweredIds(self.settings.feedback_match_ids)
        return ids

    def feedback(self, model: str, request_ids: list[str], labels: list[Any]) -> FeedbackResult:
        """Record ground truth by request id (``labels[i]`` for ``request_ids[i]``): how many
        labels were accepted, and how many name a prediction this worker answered recently
        (``gateway.answered``). Safe to call on a thread (large requests are:
        ``gateway.http.feedback``)."""
        self.models.get(model)  # unknown model -> 404
        if self.log is None:
            raise BadRequest("feedback: this gateway has no log store configured")
        now = time.time_ns() // 1000
        answered = self.answered_ids(model)
        matched = accepted = 0
        # in slices, each journaled in one write: on a thread, no single step (an encode, the
        # log's lock) holds the interpreter or the log long enough to stall predictions; a
        # slice is one record of columns, not one object per label
        for start in range(0, len(request_ids), FEEDBACK_SLICE):
            ids = request_ids[start : start + FEEDBACK_SLICE]
            batch = FeedbackBatch(
                ts_us=now, model=model, request_ids=ids, labels=labels[start : start + len(ids)]
            )
            matched += sum(1 for request_id in ids if answered.matches(request_id))
            if self.log.append_many((batch,)):  # a slice fits in the buffer whole, or not at all
                accepted += len(ids)
        return FeedbackResult(len(request_ids), accepted, matched)

    def uses_feedback_process(self, body_bytes: int) -> bool:
        """Whether a feedback body this large goes to the helper process."""
        helper = self.feedback_process  # there is one only when feedback_process_bytes is set
        return helper is not None and body_bytes >= self.settings.feedback_process_bytes

    async def feedback_in_process(self, model: str, spool_path: str) -> FeedbackResult:
        """``feedback`` of a whole (inflated) body spooled to ``spool_path`` (removed here),
        parsed, matched and written as a log segment by the helper process
        (``gateway.feedback_process``): every label is written before this returns, or none
        (503)."""
        assert self.feedback_process is not None and self.log is not None
        received, matched = await self.feedback_process.handle(
            model, spool_path, self.settings.max_feedback_labels, self.answered_ids(model)
        )
        self.log.count_written_elsewhere(FEEDBACK, received)
        return FeedbackResult(received, received, matched)

    # -- metrics ------------------------------------------------------------------------------
    def _collect(self) -> Iterator[Metric]:
        written = counter("mlgate_log_rows_written", "Log rows written to Parquet.", ["kind"])
        dropped = counter("mlgate_log_rows_dropped", "Log rows dropped (buffer full).", ["kind"])
        errors = counter("mlgate_log_write_errors", "Segments that failed to write.", [])
        journal_errors = counter(
            "mlgate_log_journal_errors",
            "Crash-journal writes (or file opens) that failed; the rows stay buffered but are "
            "not protected against a crash.",
            [],
        )
        unjournaled = counter(
            "mlgate_log_rows_unjournaled", "Log rows buffered without a journal copy.", []
        )
        replayed = counter(
            "mlgate_log_rows_replayed", "Log rows replayed from a stopped worker's journal.", []
        )
        torn = counter(
            "mlgate_log_journal_torn_bytes",
            "Bytes at the end of a stopped worker's journal that were torn and skipped.",
            [],
        )
        if self.log is not None:
            for kind in (PREDICTIONS, FEEDBACK):
                written.add_metric([kind], self.log.rows_written[kind])
                dropped.add_metric([kind], self.log.rows_dropped[kind])
            errors.add_metric([], self.log.write_errors)
            journal_errors.add_metric([], self.log.journal_errors + self.log.journal_unreadable)
            unjournaled.add_metric([], self.log.rows_unjournaled)
            replayed.add_metric([], self.log.rows_replayed)
            torn.add_metric([], self.log.journal_torn_bytes)
        yield from (written, dropped, errors, journal_errors, unjournaled, replayed, torn)
        if self.feedback_process is not None:
            helper = self.feedback_process
            handled = counter(
                "mlgate_feedback_process_requests",
                "Large feedback requests handled by the feedback helper process.",
                [],
            )
            handled.add_metric([], helper.requests)
            failed = counter(
                "mlgate_feedback_process_failures",
                "Large feedback requests answered 503 (the helper died or its write failed; "
                "none of their labels kept).",
                [],
            )
            failed.add_metric([], helper.failures)
            yield from (handled, failed)


def journal_dir(settings: GatewaySettings, logs_url: str) -> str:
    """Where this gateway's crash journal lives: ``log_journal_dir``, else ``_journal`` in a
    local log store, else a directory of the machine's temp dir named after the log store's
    URL (so that a restart of a gateway on the same store replays it)."""
    if settings.log_journal_dir:
        return settings.log_journal_dir
    if logs_url.startswith("file://"):
        return os.path.join(logs_url[len("file://") :], "_journal")
    if "://" not in logs_url:
        return os.path.join(os.path.abspath(logs_url), "_journal")
    import hashlib
    import tempfile

    digest = hashlib.sha256(logs_url.encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), "mlgate-journal", digest)
