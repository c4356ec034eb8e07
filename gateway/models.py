"""Loaded model versions and the hot-loading watcher.

A thread polls each model's ``route_stamp`` (and ``list()`` now and then for new models). When a
route changes, the versions it names are loaded, compiled and warmed on that thread — off the
serving path — and then installed on the event loop in one step: a new immutable
``ModelState`` replaces the old one, so a request sees either the old set or the new set, never
a mix. Versions no longer routed drain their queue and are released. A version that fails to
load or warm never takes traffic: the champion that was serving keeps serving, and the failure is
kept (visible in ``/admin/models``, counted in a metric) until the route changes again or an
admin asks for a reload.

When the registry cannot be reached (an object-store outage), the gateway keeps serving the
routes it has, stays ready, logs each failed poll and exports ``mlgate_registry_reachable`` (0)
and ``mlgate_registry_errors_total``; the next poll that succeeds picks up every change made
meanwhile.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from gateway import router
from gateway.batcher import Answers, Batcher
from gateway.errors import NotReady, UnknownModel, UnknownVersion
from gateway.logwriter import LogLayout
from gateway.metrics import counter, gauge
from gateway.schema import InputSpec, OutputSpec
from registry.logschema import ROUTE_CANARY, ROUTE_CHAMPION, ROUTE_EXPLICIT, ROUTE_SHADOW

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from concurrent.futures import Executor

    from prometheus_client.metrics_core import Metric

    from gateway.liveness import GatewayReporter
    from gateway.metrics import GatewayMetrics
    from gateway.runtimes.base import Runtime
    from gateway.settings import GatewaySettings
    from registry.model import ModelVersion, Route

log = logging.getLogger(__name__)


class LoadedVersion:
    """One version, loaded and warmed; ``batcher`` is attached when it is installed."""

    def __init__(
        self, manifest: ModelVersion, runtime: Runtime, *, load_s: float, backend: str
    ) -> None:
        self.manifest = manifest
        self.model = manifest.name
        self.version = manifest.version
        self.runtime = runtime
        self.backend = backend
        self.inputs = InputSpec(manifest.input_schema.features, allows_nan=runtime.allows_nan)
        self.outputs = OutputSpec(
            manifest.output_schema, runtime.classes, has_proba=_gives_proba(runtime)
        )
        self.layout = LogLayout(self.inputs, self.outputs)
        self.load_s = load_s
        self.loaded_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.batcher: Batcher | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "backend": self.backend,
            "flavor": self.manifest.flavor,
            "load_s": round(self.load_s, 4),
            "loaded_at": self.loaded_at,
            "queued_rows": self.batcher.queued_rows if self.batcher else 0,
        }


def _gives_proba(runtime: Runtime) -> bool:
    """Whether ``runtime`` returns ``predict_proba`` (asked on zero rows: every runtime answers
    an empty batch with the outputs it gives). Classifiers without ``predict_proba`` (e.g.
    ``LinearSVC``) and regressors give labels/values only."""
    empty = np.empty((0, runtime.n_features), dtype=np.float32)
    return "predict_proba" in runtime.predict(empty)


def route_role(route: Route | None, version: int) -> str:
    """How ``route`` uses ``version``: champion, canary, shadow, or unrouted.

    >>> from registry.model import Canary, Route
    >>> route_role(Route(champion=1, canary=Canary(2, 10.0)), 2)
    'canary'
    """
    if route is None:
        return "unrouted"
    if route.champion == version:
        return ROUTE_CHAMPION
    if route.canary is not None and route.canary.version == version:
        return ROUTE_CANARY
    if any(s.version == version for s in route.shadows):
        return ROUTE_SHADOW
    return "unrouted"


class ModelState:
    """What one model serves right now. Immutable: a swap replaces the whole object."""

    def __init__(
        self,
        name: str,
        *,
        route: Route | None,
        stamp: str | None,
        champion: int | None,
        versions: dict[int, LoadedVersion],
        failures: dict[int, str],
    ) -> None:
        self.name = name
        self.route = route  # as written in the registry
        self.stamp = stamp
        self.champion = champion  # the champion actually serving (previous one while loading)
        self.versions = versions
        self.failures = failures
        if route is not None and champion is not None and route.champion != champion:
            route = msgspec.structs.replace(route, champion=champion)
        self.serving_route = route

    @property
    def ready(self) -> bool:
        """The champion the registry routes is loaded, warm and serving. A canary or shadow
        that failed to load does not make the model unready: it takes no traffic (its keys
        stay on the champion) and is reported (``failures``, ``/metrics``, an event)."""
        if self.route is None or self.route.champion is None:
            return False
        return self.route.champion == self.champion and self.champion in self.versions

    def role(self, version: int) -> str:
        """How the route uses ``version`` (``route_role``)."""
        return route_role(self.route, version)

    def choose(self, key: str) -> tuple[LoadedVersion, str]:
        """The loaded version (and route label) for routing key ``key``."""
        if self.serving_route is None or self.champion is None:
            raise NotReady(f"model {self.name!r} has no loaded champion yet")
        try:
            decision = router.choose(self.serving_route, key, ready=self.versions)
        except router.NoChampion:
            raise NotReady(f"model {self.name!r} has no champion version routed") from None
        return self.versions[decision.version], decision.route

    def choose_champion(self) -> tuple[LoadedVersion, str]:
        if self.champion is None:
            raise NotReady(f"model {self.name!r} has no loaded champion yet")
        return self.versions[self.champion], ROUTE_CHAMPION

    def explicit(self, version: int) -> tuple[LoadedVersion, str]:
        loaded = self.versions.get(version)
        if loaded is None:
            raise UnknownVersion(
                f"model {self.name!r} version {version}: not loaded; loaded versions are "
                f"{sorted(self.versions)} (a version must be routed as champion, canary or "
                f"shadow to be served)"
            )
        return loaded, ROUTE_EXPLICIT

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ready": self.ready,
            "route": msgspec.to_builtins(self.route) if self.route is not None else None,
            "serving_champion": self.champion,
            "loaded": [self.versions[v].describe() for v in sorted(self.versions)],
            "failures": {str(v): msg for v, msg in sorted(self.failures.items())},
        }


class ModelManager:
    """Owns every loaded version; the watcher thread keeps them in line with the registry."""

    def __init__(
        self,
        registry: Any,
        *,
        settings: GatewaySettings,
        metrics: GatewayMetrics,
        executor: Executor,
        load_runtime: Callable[..., Runtime] | None = None,
        clock: Callable[[], float] = time.monotonic,
        reporter: GatewayReporter | None = None,
        on_answer: Callable[[LoadedVersion, Answers], None] | None = None,
    ) -> None:
        self.registry = registry
        self.on_answer = on_answer  # sees each batch's answers before they are released
        self.settings = settings
        self.metrics = metrics
        self.executor = executor
        self.load_runtime = load_runtime
        self.clock = clock
        self.reporter = reporter  # tells the registry which generation this gateway serves
        self._reset()

    def _reset(self) -> None:
        self._states: dict[str, ModelState] = {}
        self._names: list[str] = []
        self._synced_once = False
        self._stop = threading.Event()
        self._poke = threading.Event()
        self._force: set[str] = set()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self.last_error: str | None = None
        # failed loads: (model, version) -> (attempts, clock time of the next try)
        self._retries: dict[tuple[str, int], tuple[int, float]] = {}
        self.load_retries = 0  # loads tried again after a failure, ever
        self.event_errors = 0  # load events the registry did not take
        self.registry_errors = 0  # failed registry calls of the watcher, ever
        self.registry_reachable = True  # the last poll reached the registry for every model
        self.last_poll_ok_at: float | None = None  # Unix seconds of the last clean poll

    # -- request path (event loop) ------------------------------------------------------------
    def get(self, name: str) -> ModelState:
        state = self._states.get(name)
        if state is None:
            if not self._synced_once:
                raise NotReady(f"model {name!r}: the gateway is still loading models")
            known = sorted(self._states)
            raise UnknownModel(f"model {name!r} not found: served models are {known}")
        return state

    @property
    def states(self) -> dict[str, ModelState]:
        return self._states

    @property
    def ready(self) -> bool:
        return self._synced_once and all(s.ready for s in self._states.values())

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._watch, name="mlgate-watcher", daemon=True)
        self._thread.start()
        self.metrics.add_collector(self._collect)

    async def aclose(self) -> None:
        self._stop.set()
        self._poke.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 60)
        states, self._states = self._states, {}
        for state in states.values():
            for loaded in state.versions.values():
                if loaded.batcher is not None:
                    self._retire(loaded)
        if self._retiring:
            await asyncio.wait(self._retiring)

    def reload(self, name: str | None = None) -> None:
        """Re-read routes now and retry failed versions (all models, or ``name``)."""
        # "*": list the registry again too (a model registered since the last list poll)
        self._force.update([name] if name and name in self._states else ["*"])
        self._poke.set()

    # -- watcher thread -----------------------------------------------------------------------
    def _watch(self) -> None:
        last_list = -float("inf")
        while not self._stop.is_set():
            errors_before = self.registry_errors
            try:
                if self.clock() - last_list >= self.settings.list_interval_s or "*" in self._force:
                    self._names = list(self.registry.list())
                    last_list = self.clock()
                force, self._force = self._force, set()
                for name in self._names:
                    if self._stop.is_set():
                        return
                    self._check(name, forced="*" in force or name in force)
                    state = self._states.get(name)
                    if self.reporter is not None and state is not None:
                        self.reporter.observe(state)  # on change, else every heartbeat_s
                self._synced_once = True
                if self.registry_errors == errors_before:
                    self.last_error = None
                    self.last_poll_ok_at = time.time()
            except Exception as exc:  # noqa: BLE001 - the registry may be down: keep serving
                self.registry_errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("watcher: registry poll failed: %s", self.last_error)
            self.registry_reachable = self.registry_errors == errors_before
            self._poke.wait(self.settings.poll_interval_s)
            self._poke.clear()

    def _check(self, name: str, *, forced: bool) -> None:
        try:
            stamp = self.registry.route_stamp(name)
        except Exception as exc:  # noqa: BLE001
            self.registry_errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("watcher: route_stamp(%r) failed: %s", name, exc)
            return
        state = self._states.get(name)
        now = self.clock()
        due = {
            v
            for v in (state.failures if state is not None else ())
            if self._retries.get((name, v), (0, now))[1] <= now
        }
        if state is not None and state.stamp == stamp and not forced and not due:
            return
        route = self.registry.route(name)
        self._sync(name, route, stamp, state, forced=forced, retry=due)

    def _sync(
        self,
        name: str,
        route: Route,
        stamp: str | None,
        state: ModelState | None,
        *,
        forced: bool,
        retry: set[int] | None = None,
    ) -> None:
        loaded = dict(state.versions) if state else {}
        failures = {} if forced else dict(state.failures if state else {})
        wanted = route.routed_versions()
        fresh: dict[int, LoadedVersion] = {}
        for version in wanted:
            if version in loaded or (version in failures and version not in (retry or ())):
                continue
            if version in failures:
                self.load_retries += 1
            try:
                fresh[version] = self._load(name, version)
            except Exception as exc:  # noqa: BLE001 - any load failure keeps the old version
                failures[version] = self._failed(name, version, route, exc)
            else:
                failures.pop(version, None)
                if self._retries.pop((name, version), None) is not None:
                    self._event(name, "gateway.load.recovered", version, route, {})
        available = {**loaded, **fresh}
        champion = route.champion if route.champion in available else None
        if champion is None and state is not None and state.champion in available:
            champion = state.champion  # keep serving the previous champion
        keep = {v: available[v] for v in wanted if v in available}
        if champion is not None:
            keep[champion] = available[champion]
        for version in list(failures):
            if version not in wanted:
                del failures[version]
                self._retries.pop((name, version), None)
        new_state = ModelState(
            name, route=route, stamp=stamp, champion=champion, versions=keep, failures=failures
        )
        retired = [lv for v, lv in loaded.items() if v not in keep]
        if state is None or state.route != route or fresh or retired:
            failed = "".join(f", v{v} failed to load" for v in sorted(failures))
            log.info("model %s: %s%s", name, route.describe(), failed)
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(
            self._install(new_state, list(fresh.values()), retired), self._loop
        )
        future.result(timeout=60)

    def _failed(self, name: str, version: int, route: Route, exc: Exception) -> str:
        """Count a failed load, schedule its retry (exponential backoff) and, on the first
        failure, record an event; returns the reason shown in ``failures``."""
        attempts, _ = self._retries.get((name, version), (0, 0.0))
        attempts += 1
        s = self.settings
        delay = min(s.load_retry_max_s, s.load_retry_initial_s * 2 ** (attempts - 1))
        self._retries[(name, version)] = (attempts, self.clock() + delay)
        reason = f"{type(exc).__name__}: {exc}"
        log.error("model %s version %d failed to load (attempt %d, next in %.0f s): %s",
                  name, version, attempts, delay, reason)  # fmt: skip
        if attempts == 1:
            self._event(name, "gateway.load.failed", version, route, {"error": reason})
        return reason

    def _event(
        self, name: str, kind: str, version: int, route: Route, detail: dict[str, Any]
    ) -> None:
        """An event on the model's audit trail, naming this gateway and the version's role."""
        gateway = self.reporter.gateway_id if self.reporter is not None else None
        try:
            self.registry.record_event(
                name, kind, version=version,
                detail={"gateway": gateway, "route": route_role(route, version), **detail},
                actor="gateway",
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - the registry may be down: keep serving
            self.event_errors += 1
            log.warning("model %s: recording %s failed: %s", name, kind, exc)

    def _load(self, name: str, version: int) -> LoadedVersion:
        start = time.perf_counter()
        try:
            manifest = self.registry.get(name, version)
            runtime = self._runtime(manifest)
            elapsed = time.perf_counter() - start
            loaded = LoadedVersion(
                manifest, runtime, load_s=elapsed, backend=getattr(runtime, "backend", "?")
            )
            if runtime.n_features != loaded.inputs.n_features:
                raise ValueError(
                    f"runtime takes {runtime.n_features} features, manifest lists "
                    f"{loaded.inputs.n_features}"
                )
            self._warm(loaded)
        except Exception:
            self.metrics.model_loads.labels(name, "failed").inc()
            raise
        loaded.load_s = time.perf_counter() - start
        self.metrics.model_loads.labels(name, "ok").inc()
        self.metrics.model_load_seconds.labels(name).observe(loaded.load_s)
        log.info(
            "model %s version %d loaded (%s) in %.3fs", name, version, loaded.backend, loaded.load_s
        )
        return loaded

    def _runtime(self, manifest: ModelVersion) -> Runtime:
        if self.load_runtime is not None:
            return self.load_runtime(self.registry, manifest)
        from gateway.loading import load_runtime

        runtime: Runtime = load_runtime(
            self.registry,
            manifest,
            backend=self.settings.backend,
            fallback=True,
            saved=self.settings.saved_runtimes(),
        )
        return runtime

    def _warm(self, loaded: LoadedVersion) -> None:
        rows = max(1, self.settings.warmup_rows)
        X = np.zeros((rows, loaded.inputs.n_features), dtype=np.float32)
        for j, codec in loaded.inputs.categorical.items():
            X[:, j] = min(codec.labels) if codec.labels else 0.0
        for batch in (X, X[:1]):
            out = loaded.runtime.predict(batch)
            predict = out.get("predict")
            if predict is None or predict.shape[0] != batch.shape[0]:
                raise ValueError(f"warm-up: runtime returned {sorted(out)} without a row each")
            if "predict_proba" in loaded.outputs.names:
                proba = out.get("predict_proba")
                if proba is None or proba.shape[0] != batch.shape[0]:
                    raise ValueError("warm-up: classifier returned no predict_proba per row")

    # -- installation (event loop) ------------------------------------------------------------
    async def _install(
        self, state: ModelState, fresh: list[LoadedVersion], retired: list[LoadedVersion]
    ) -> None:
        s = self.settings
        for loaded in fresh:
            model, version = loaded.model, loaded.version
            loaded.batcher = Batcher(
                loaded.runtime,
                executor=self.executor,
                max_batch_rows=s.max_batch_rows,
                max_delay_us=s.max_delay_us,
                max_queue_rows=s.max_queue_rows,
                parallel_batches=s.parallel_batches,
                retry_after_s=s.retry_after_s,
                inline_compute_us=s.inline_compute_us,
                on_batch=functools.partial(self.metrics.observe_batch, model, version),
                on_answer=(functools.partial(self.on_answer, loaded) if self.on_answer else None),
                name=f"{model}:{version}",
            )
            loaded.batcher.start()
        self._states = {**self._states, state.name: state}  # the atomic swap
        if fresh and self.settings.gc_freeze:
            gc.freeze()  # a loaded model's objects live long: keep them out of collections
        for loaded in retired:
            self._retire(loaded)

    def _retire(self, loaded: LoadedVersion) -> None:
        assert loaded.batcher is not None
        task = asyncio.get_running_loop().create_task(
            loaded.batcher.aclose(timeout_s=self.settings.drain_timeout_s)
        )
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    # -- metrics ------------------------------------------------------------------------------
    def _collect(self) -> Iterator[Metric]:
        depth = gauge(
            "mlgate_queue_rows", "Rows waiting in a version's queue.", ["model", "version"]
        )
        ready = gauge("mlgate_model_ready", "1 when every routed version is loaded.", ["model"])
        failed = gauge(
            "mlgate_model_failed_versions", "Routed versions that failed to load.", ["model"]
        )
        failed_version = gauge(
            "mlgate_model_version_failed",
            "1 for each routed version that failed to load (it takes no traffic; retried with "
            "backoff), by its role in the route.",
            ["model", "version", "route"],
        )
        for name, state in self._states.items():
            for version, loaded in state.versions.items():
                rows = loaded.batcher.queued_rows if loaded.batcher else 0
                depth.add_metric([name, str(version)], rows)
            ready.add_metric([name], 1.0 if state.ready else 0.0)
            failed.add_metric([name], len(state.failures))
            for version in state.failures:
                failed_version.add_metric([name, str(version), state.role(version)], 1.0)
        yield depth
        yield ready
        yield failed
        yield failed_version
        retries = counter(
            "mlgate_model_load_retries", "Loads tried again after a version failed to load.", []
        )
        retries.add_metric([], float(self.load_retries))
        yield retries
        reachable = gauge(
            "mlgate_registry_reachable", "1 when the last registry poll succeeded.", []
        )
        reachable.add_metric([], 1.0 if self.registry_reachable else 0.0)
        yield reachable
        errors = counter("mlgate_registry_errors", "Registry polls (list, route) that failed.", [])
        errors.add_metric([], float(self.registry_errors))
        yield errors
        last_ok = gauge(
            "mlgate_registry_last_success_timestamp_seconds",
            "Unix time of the last registry poll that succeeded (0: none yet).",
            [],
        )
        last_ok.add_metric([], self.last_poll_ok_at or 0.0)
        yield last_ok
