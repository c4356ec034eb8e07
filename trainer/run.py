"""One retraining run: data -> fit -> evaluate -> register -> rollout.

The run holds its model's lease (:mod:`trainer.claims`) from start to end and renews it from a
heartbeat thread; before it registers it checks that the lease is still its own, so a run
that was given up for dead never registers a second version. The version is registered in one
call at the end (the registry writes its manifest last), so a run killed at any point leaves
no visible partial version. Every end is a record and an event: ``trainer.run.finished``
(a version registered, or nothing to do: ``skipped``), ``trainer.run.rejected`` (the gate said
no, with its figures), ``trainer.run.failed`` (with the reason).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from registry import ModelNotFound, RegistryError, VersionNotFound
from trainer import claims, data, fit, gate, recipes
from trainer.errors import LeaseLost, RunFailed, RunSkipped, TrainerError
from trainer.records import RunRecord, RunStore, Trigger, new_run_id, owner_id, utc_now

if TYPE_CHECKING:
    from collections.abc import Callable

    from registry import ModelVersion, Registry
    from trainer.promotion import RolloutController
    from trainer.settings import TrainerSettings

log = logging.getLogger(__name__)

EVENT_STARTED = "trainer.run.started"
EVENT_FINISHED = "trainer.run.finished"
EVENT_REJECTED = "trainer.run.rejected"
EVENT_FAILED = "trainer.run.failed"
ACTOR = "trainer"
TARGET = "label"


class Progress(Protocol):
    """Told about each stage as the run enters it (the CLI's progress display)."""

    def stage(self, record: RunRecord, stage: str) -> None: ...


class _Silent:
    def stage(self, record: RunRecord, stage: str) -> None:
        return None


@dataclass
class RunContext:
    """What a run works with: the registry, the log store and the settings."""

    registry: Registry
    logs_url: str
    settings: TrainerSettings
    storage_options: dict[str, Any] | None = None
    clock: Callable[[], float] = time.time
    owner: str = field(default_factory=owner_id)
    # the analysed rollout controller (trainer.promotion); built on first use with the
    # default plan when not given
    controller: RolloutController | None = None

    @property
    def rollouts(self) -> RolloutController:
        if self.controller is None:
            from trainer.promotion import RolloutController

            self.controller = RolloutController(self.registry, self.logs_url, actor=ACTOR)
        return self.controller

    @property
    def states(self) -> claims.StateStore:
        return claims.StateStore(self.registry)

    @property
    def runs(self) -> RunStore:
        return RunStore(self.registry)


class Heartbeat:
    """Renews a run's lease every ``lease_s / 3`` until stopped; remembers a lost lease."""

    def __init__(self, ctx: RunContext, model: str, run_id: str) -> None:
        self.ctx, self.model, self.run_id = ctx, model, run_id
        self.lost: LeaseLost | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="trainer-lease", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def renew(self) -> None:
        """Renew now; raises ``LeaseLost`` when another trainer has taken the run over."""
        if self.lost is not None:
            raise self.lost
        lease_s = self.ctx.settings.lease_s
        claims.renew(
            self.ctx.states, self.model, self.run_id, expires_at=self.ctx.clock() + lease_s
        )

    def _loop(self) -> None:
        while not self._stop.wait(self.ctx.settings.lease_s / 3):
            try:
                self.renew()
            except LeaseLost as exc:
                self.lost = exc
                return
            except Exception as exc:  # noqa: BLE001 - a storage hiccup: the next beat retries
                log.warning("trainer: renewing the lease of %s failed: %s", self.run_id, exc)


def new_record(
    model: str,
    trigger: Trigger,
    *,
    owner: str,
    attempt: int = 1,
    dry_run: bool = False,
    run_id: str | None = None,
) -> RunRecord:
    return RunRecord(
        run_id=run_id or new_run_id(),
        model=model,
        trigger=trigger,
        attempt=attempt,
        owner=owner,
        started_at=utc_now(),
        dry_run=dry_run,
    )


def execute(
    ctx: RunContext,
    record: RunRecord,
    *,
    progress: Progress | None = None,
) -> RunRecord:
    """Run the pipeline for ``record`` (whose lease the caller holds) and release the lease.

    Never raises for a bad model, bad data or a storage failure: the record says why.
    """
    progress = progress or _Silent()
    settings = ctx.settings.for_model(record.model)
    try:
        ctx.runs.save(record)
        _event(ctx, record, EVENT_STARTED, {"attempt": record.attempt, "dry_run": record.dry_run})
        with Heartbeat(ctx, record.model, record.run_id) as beat:
            _pipeline(ctx, settings, record, beat, progress)
    except LeaseLost as exc:
        _end(ctx, record, "failed", f"abandoned: {exc}")
        return record  # the lease is someone else's now: leave it alone
    except RunSkipped as exc:
        _end(ctx, record, "skipped", str(exc))
    except (RunFailed, TrainerError) as exc:
        _end(ctx, record, "failed", str(exc))
    except Exception as exc:  # noqa: BLE001 - storage errors and bugs end the run, not the trainer
        log.exception("trainer: run %s of %r failed", record.run_id, record.model)
        _end(ctx, record, "failed", f"{type(exc).__name__}: {exc}")
    try:
        claims.release(ctx.states, record.model, record.run_id, now=ctx.clock())
    except Exception as exc:  # noqa: BLE001 - the lease then expires on its own
        log.warning("trainer: releasing the lease of %s failed: %s", record.run_id, exc)
    return record


def _stage(ctx: RunContext, record: RunRecord, stage: str, progress: Progress) -> float:
    record.stage = stage
    ctx.runs.save(record)
    progress.stage(record, stage)
    return time.perf_counter()


def _pipeline(
    ctx: RunContext,
    settings: TrainerSettings,
    record: RunRecord,
    beat: Heartbeat,
    progress: Progress,
) -> None:
    reg = ctx.registry
    started = _stage(ctx, record, "data", progress)
    champion = _champion(reg, record.model)
    record.champion_version = champion.version
    metric = settings.metric_for(champion.output_schema.task)
    record.metric = metric
    candidates = recipes.candidate_recipes(settings, champion)
    record.recipe = candidates[0][1]
    reader = data.LogReader(ctx.logs_url, storage_options=ctx.storage_options)
    rows = data.assemble(reg, reader, champion, settings, since=record.trigger.since)
    record.rows = rows.rows
    record.time_range = rows.time_range
    record.data_fingerprint = rows.fingerprint
    record.timings_s["data"] = time.perf_counter() - started

    beat.renew()
    started = _stage(ctx, record, "fit", progress)
    champion_model = _load_champion(reg, champion)
    fitted = _fit_candidates(settings, record, candidates, champion_model, rows)
    record.timings_s["fit"] = time.perf_counter() - started

    beat.renew()
    started = _stage(ctx, record, "evaluate", progress)
    X_holdout = rows.matrix(rows.X_holdout)
    classes = rows.classes
    champ_scored = gate.score(champion_model, X_holdout, classes)
    best: tuple[str, str, Any, gate.Scored, float] | None = None
    for entry in record.candidates:
        est = fitted.get(entry["name"])
        if est is None:
            continue
        scored = gate.score(est, X_holdout, classes)
        value = gate.metric_value(metric, rows.y_holdout, scored, classes)
        entry[metric] = value
        better = best is None or (
            value > best[4] if gate.HIGHER_IS_BETTER[metric] else value < best[4]
        )
        if better:
            best = (entry["name"], entry["recipe"], est, scored, value)
    if best is None:
        reasons = "; ".join(f"{c['name']}: {c.get('error')}" for c in record.candidates)
        raise RunFailed(f"model {record.model!r}: no candidate could be fitted ({reasons})")
    name, recipe, estimator, scored, _ = best
    verdict = gate.judge(
        metric,
        rows.y_holdout,
        scored,
        champ_scored,
        classes,
        margin=settings.margin,
        confidence=settings.confidence,
        rounds=settings.bootstrap_rounds,
        max_rows=settings.bootstrap_max_rows,
        class_tolerance=settings.class_tolerance,
        min_class_rows=settings.min_class_rows,
    )
    record.recipe = recipe
    record.gate = {
        **verdict.to_dict(),
        "candidate_name": name,
        "margin": settings.margin,
        "confidence": settings.confidence,
    }
    record.metrics = {
        "candidate": _all_metrics(rows, scored, metric),
        "champion": _all_metrics(rows, champ_scored, metric),
    }
    record.timings_s["evaluate"] = time.perf_counter() - started
    if not verdict.passed:
        _end(ctx, record, "rejected", f"{name}: {verdict.reason}")
        return
    if record.dry_run:
        _end(ctx, record, "passed", f"dry run: {name} would be registered; {verdict.reason}")
        return

    beat.renew()  # never register from a run that was given up for dead
    started = _stage(ctx, record, "register", progress)
    mv = _register(reg, settings, record, champion, estimator, rows)
    record.version = mv.version
    record.timings_s["register"] = time.perf_counter() - started

    started = _stage(ctx, record, "rollout", progress)
    record.rollout = _rollout(ctx, settings, record.model, mv.version)
    record.timings_s["rollout"] = time.perf_counter() - started
    _end(ctx, record, "registered", f"v{mv.version} ({name}): {verdict.reason}")


def _champion(reg: Registry, model: str) -> ModelVersion:
    try:
        return reg.get(model, "champion")
    except ModelNotFound as exc:
        raise RunFailed(f"unknown model: {exc}") from exc
    except VersionNotFound as exc:
        raise RunSkipped(f"model {model!r} has no champion to retrain: {exc}") from exc


def _load_champion(reg: Registry, champion: ModelVersion) -> Any:
    try:
        loaded = reg.load_model(champion)
    except RegistryError as exc:
        raise RunFailed(
            f"model {champion.name!r} v{champion.version}: cannot load it: {exc}"
        ) from exc
    if isinstance(loaded, bytes):
        return gate.OnnxModel(loaded, champion.output_schema.classes)
    return loaded


def _fit_candidates(
    settings: TrainerSettings,
    record: RunRecord,
    candidates: list[tuple[str, str]],
    champion_model: Any,
    rows: data.TrainingData,
) -> dict[str, Any]:
    from sklearn.base import clone

    X = rows.matrix(rows.X_train)
    frame = rows.training_frame(TARGET)
    fitted: dict[str, Any] = {}
    for name, recipe in candidates:
        unfitted = None
        if recipe == recipes.CLONE:
            try:
                unfitted = clone(champion_model)
            except (TypeError, RuntimeError) as exc:
                record.candidates.append(
                    {"name": name, "recipe": recipe, "error": f"cannot clone the champion: {exc}"}
                )
                continue
        job = fit.FitJob(
            recipe=recipe,
            task=rows.task,
            unfitted=unfitted,
            frame=frame,
            target=TARGET,
            X=X,
            y=rows.y_train,
            weights=rows.w_train,
            threads=settings.fit_threads,
            nice=settings.nice,
        )
        result = fit.fit_in_child(job, timeout_s=settings.fit_timeout_s)
        entry: dict[str, Any] = {"name": name, "recipe": recipe, "fit_s": round(result.fit_s, 3)}
        if result.error is not None:
            entry["error"] = result.error
        else:
            fitted[name] = result.estimator
            entry["estimator"] = type(result.estimator).__name__
        record.candidates.append(entry)
    if len(candidates) == 1 and not fitted:
        raise RunFailed(f"recipe {candidates[0][1]!r} failed: {record.candidates[0].get('error')}")
    return fitted


def _all_metrics(rows: data.TrainingData, scored: gate.Scored, metric: str) -> dict[str, float]:
    names = (
        ("accuracy", "f1", "log_loss", "roc_auc")
        if rows.task == "classification"
        else ("rmse", "mae")
    )
    out = {}
    for name in names:
        try:
            out[name] = gate.metric_value(name, rows.y_holdout, scored, rows.classes)
        except ValueError:
            continue
    return out


def _register(
    reg: Registry,
    settings: TrainerSettings,
    record: RunRecord,
    champion: ModelVersion,
    estimator: Any,
    rows: data.TrainingData,
) -> ModelVersion:
    metrics = {
        f"{who}_{k}": v for who, figures in record.metrics.items() for k, v in figures.items()
    }
    metrics[record.metric or "metric"] = record.gate["candidate"]
    reference = rows.reference_sample(settings.reference_rows, settings.label_column)
    try:
        return reg.register(
            record.model,
            estimator,
            reference=reference,
            metrics=metrics,
            parent_version=champion.version,
            trigger=_trigger_text(record.trigger),
            recipe=record.recipe,
            trusted_types=champion.trusted_types,
            tags={"trainer.run": record.run_id},
            lineage_fields={
                "data_fingerprint": rows.fingerprint,
                "rows": rows.rows["train"],
                "time_range": rows.time_range,
                "run_id": record.run_id,
                "gate": {
                    k: record.gate[k]
                    for k in (
                        "metric",
                        "candidate",
                        "champion",
                        "delta",
                        "interval",
                        "required",
                        "rows",
                    )
                },
            },
        )
    except RegistryError as exc:
        raise RunFailed(f"registering the candidate failed: {exc}") from exc


def _trigger_text(trigger: Trigger) -> str:
    """The manifest's ``trigger``: ``alert:<id>``, ``manual`` or ``schedule``.

    >>> _trigger_text(Trigger(kind="alert", alert_id="a1"))
    'alert:a1'
    """
    return f"alert:{trigger.alert_id}" if trigger.kind == "alert" else trigger.kind


def _rollout(
    ctx: RunContext, settings: TrainerSettings, model: str, version: int
) -> dict[str, Any]:
    """Start the analysed rollout of the new version (shadow, canary steps, champion)."""
    if not settings.rollout:
        return {"started": False, "reason": "rollout = false in [trainer]"}
    from trainer.promotion import PromotionError

    try:
        route = ctx.rollouts.begin(model, version)
    except (PromotionError, RegistryError) as exc:
        # the version is registered and takes no traffic: the run has done its part
        return {"started": False, "reason": f"rollout not started: {exc}"}
    state = route.rollout or {}
    return {
        "started": True,
        "mode": "analysed",
        "phase": state.get("phase"),
        "generation": route.generation,
    }


def _end(ctx: RunContext, record: RunRecord, status: str, reason: str) -> None:
    record.status = status  # type: ignore[assignment]
    record.reason = reason
    record.finished_at = utc_now()
    if status in ("registered", "passed", "skipped"):
        record.stage = "done"
    try:
        ctx.runs.save(record)
    except Exception as exc:  # noqa: BLE001 - the event below still says how it ended
        log.warning("trainer: saving run %s failed: %s", record.run_id, exc)
    kind = {"rejected": EVENT_REJECTED, "failed": EVENT_FAILED}.get(status, EVENT_FINISHED)
    detail: dict[str, Any] = {"status": status, "reason": reason}
    if status == "rejected":
        detail["gate"] = record.gate
    _event(ctx, record, kind, detail)


def _event(ctx: RunContext, record: RunRecord, kind: str, extra: dict[str, Any]) -> None:
    detail = {"run_id": record.run_id, "trigger": msgspec.to_builtins(record.trigger), **extra}
    try:
        ctx.registry.record_event(
            record.model, kind, version=record.version, detail=detail, actor=ACTOR
        )
    except Exception as exc:  # noqa: BLE001 - the run record still holds everything
        log.warning("trainer: recording %s for %s failed: %s", kind, record.run_id, exc)
