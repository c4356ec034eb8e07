"""``mlgate trainer run``: the long-running trainer.

Every ``poll_interval_s`` it reads each model's audit trail from the registry (so alerts
raised while no trainer was running are still seen), decides through the model's state
(:func:`trainer.triggers.plan` inside a compare-and-swap, so any number of trainers make one
run per alert), runs what it won, and advances the timed rollouts it started.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from registry import RegistryError
from trainer import triggers
from trainer.records import RunRecord, new_run_id, utc_now
from trainer.run import RunContext, execute, new_record

if TYPE_CHECKING:
    from trainer.claims import ModelState
    from trainer.run import Progress

log = logging.getLogger(__name__)


class TrainerService:
    """Polls the registry and runs retrains; ``tick()`` is one poll (tests call it)."""

    def __init__(self, ctx: RunContext, *, progress: Progress | None = None) -> None:
        self.ctx = ctx
        self.progress = progress
        self.runs: list[RunRecord] = []  # the runs this process made, oldest first

    def tick(self) -> list[RunRecord]:
        """One poll of every model (then one step of every rollout in progress); returns
        the runs it made."""
        made = self._poll()
        self.ctx.rollouts.tick()
        return made

    def _poll(self) -> list[RunRecord]:
        made = []
        try:
            models = self.ctx.registry.list()
        except (RegistryError, OSError) as exc:
            log.warning("trainer: cannot list the registry's models: %s", exc)
            return []
        for model in models:
            try:
                record = self.tick_model(model)
            except Exception as exc:  # noqa: BLE001 - one model's trouble must not stop the rest
                log.warning(
                    "trainer: model %r skipped this poll: %s: %s", model, type(exc).__name__, exc
                )
                continue
            if record is not None:
                made.append(record)
        return made

    def tick_model(self, model: str) -> RunRecord | None:
        """Decide for one model and run what this trainer won."""
        ctx = self.ctx
        settings = ctx.settings.for_model(model)
        events = ctx.registry.events(model)
        decision = triggers.Decision()
        now = ctx.clock()

        def change(state: ModelState) -> ModelState:
            return triggers.plan(
                state,
                events,
                now=now,
                settings=settings,
                owner=ctx.owner,
                new_run_id=new_run_id,
                decision=decision,
            )

        _old, new = ctx.states.update(model, change)
        if new is None:
            return None
        for aid, why in decision.absorbed:
            log.info("trainer: alert %s of %r absorbed: %s", aid, model, why)
        if decision.abandoned is not None:
            self._close_abandoned(model, decision)
        lease = decision.start
        if lease is None:
            return None
        record = new_record(
            model, lease.trigger, owner=ctx.owner, attempt=lease.attempt, run_id=lease.run_id
        )
        execute(ctx, record, progress=self.progress)
        self.runs.append(record)
        return record

    def _close_abandoned(self, model: str, decision: triggers.Decision) -> None:
        old = decision.abandoned
        assert old is not None
        record = self.ctx.runs.get(model, old.run_id)
        if record is None or record.ended:
            return
        taken = decision.start is not None and decision.start.trigger == old.trigger
        record.status = "failed"
        record.reason = f"abandoned: its trainer {old.owner} stopped renewing the lease" + (
            f"; taken over by run {decision.start.run_id}"
            if taken and decision.start
            else f"; given up after {old.attempt} attempt(s)"
        )
        record.finished_at = utc_now()
        self.ctx.runs.save(record)
        self.ctx.registry.record_event(
            model,
            "trainer.run.failed",
            detail={"run_id": record.run_id, "status": "failed", "reason": record.reason},
            actor="trainer",
        )

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set. Rollouts are advanced on a thread of their own, so a
        long fit never holds up another model's rollout step."""
        interval = self.ctx.settings.poll_interval_s
        rollouts = threading.Thread(
            target=self._rollouts, args=(stop, interval), name="trainer-rollouts", daemon=True
        )
        rollouts.start()
        try:
            while not stop.is_set():
                self._poll()
                stop.wait(interval)
        finally:
            stop.set()
            rollouts.join(30)

    def _rollouts(self, stop: threading.Event, interval: float) -> None:
        while not stop.is_set():
            try:
                self.ctx.rollouts.tick()
            except Exception:  # noqa: BLE001 - logged; the next tick tries again
                log.exception("trainer: the rollout controller's tick failed")
            stop.wait(interval)
