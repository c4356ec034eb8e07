"""A retraining run from real Parquet segments to a registered (or rejected) version."""

from __future__ import annotations

import numpy as np

from tests.trainer.conftest import MODEL, World, concept, drifted_traffic, rows, write_traffic
from trainer import history, retrain


def test_drifted_traffic_gives_a_better_version_with_lineage(world: World) -> None:
    drifted_traffic(world)
    run = retrain(MODEL, ctx=world.ctx())
    assert run.status == "registered", run.reason
    assert run.version == 2
    mv = world.registry.get(MODEL, 2)
    lineage = mv.lineage
    assert lineage.parent_version == 1 and lineage.trigger == "manual"
    assert lineage.recipe == "clone" and lineage.run_id == run.run_id
    assert lineage.data_fingerprint == run.data_fingerprint and lineage.rows == run.rows["train"]
    assert lineage.time_range["end"] is not None
    assert lineage.gate["candidate"] > lineage.gate["champion"] + 0.1
    assert lineage.gate["interval"][0] > 0
    assert "champion_accuracy" in lineage.metrics and "candidate_accuracy" in lineage.metrics
    # the new reference sample comes from the training rows and carries the label
    ref = world.registry.load_reference(mv)
    assert ref is not None and "label" in ref.columns
    # holdout is the newest quarter, a gap before it; reference rows are training rows only
    assert run.rows["holdout"] == 375 and run.rows["gap"] == 30
    assert run.rows["train"] == 1500 - 375 - 30 + 2000
    kinds = [e.kind for e in world.registry.events(MODEL)]
    assert kinds.index("trainer.run.started") < kinds.index("trainer.run.finished")
    assert [r.run_id for r in history(world.registry, MODEL)] == [run.run_id]


def test_same_concept_candidate_is_rejected_and_nothing_registered(world: World) -> None:
    X = rows(1500, seed=3)
    write_traffic(world.logs, X, concept(X, drifted=False))
    run = retrain(MODEL, ctx=world.ctx())
    assert run.status == "rejected"
    assert "lower bound" in (run.reason or "")
    assert run.version is None
    assert [mv.version for mv in world.registry.versions(MODEL)] == [1]
    assert run.gate["champion"] > 0.9 and run.metrics["candidate"]["accuracy"] > 0.9
    events = [e for e in world.registry.events(MODEL) if e.kind == "trainer.run.rejected"]
    assert len(events) == 1 and events[0].detail["gate"]["metric"] == "accuracy"


def test_no_labels_too_few_and_one_class_end_skipped(world: World) -> None:
    run = retrain(MODEL, ctx=world.ctx())
    assert run.status == "skipped" and "no labelled production rows" in (run.reason or "")
    X = rows(100, seed=4)
    write_traffic(world.logs, X, concept(X, drifted=True), prefix="few")
    run = retrain(MODEL, ctx=world.ctx())
    assert run.status == "skipped" and "only 100 labelled" in (run.reason or "")
    assert [mv.version for mv in world.registry.versions(MODEL)] == [1]


def test_one_class_only(world: World) -> None:
    X = rows(400, seed=5)
    write_traffic(world.logs, X, np.ones(400, dtype=np.int64))
    run = retrain(MODEL, ctx=world.ctx(keep_reference=False))
    assert run.status == "skipped" and "one class only" in (run.reason or "")


def test_labels_of_the_wrong_type_fail_the_run(world: World) -> None:
    X = rows(400, seed=6)
    write_traffic(world.logs, X, [], label_col=["cat", "dog"] * 200)
    run = retrain(MODEL, ctx=world.ctx())
    assert run.status == "failed"
    assert "labels of the wrong type" in (run.reason or "") and "'cat'" in (run.reason or "")
    assert [e.kind for e in world.registry.events(MODEL)][-1] == "trainer.run.failed"


def test_a_run_for_an_alert_trains_on_the_rows_since_its_window(world: World) -> None:
    from datetime import UTC, datetime

    from trainer.claims import Lease, acquire
    from trainer.records import Trigger
    from trainer.run import execute, new_record

    X_old = rows(1000, seed=11)
    write_traffic(world.logs, X_old, concept(X_old, drifted=False), prefix="old")
    X_new = rows(800, seed=12)
    change = datetime(2026, 12, 1, 1, tzinfo=UTC)
    write_traffic(world.logs, X_new, concept(X_new, drifted=True), prefix="new", start=change)
    ctx = world.ctx(keep_reference=False)
    trigger = Trigger(kind="alert", alert_id="a", since="2026-12-01T01:00:00Z")
    record = new_record(MODEL, trigger, owner="test")
    lease = Lease(record.run_id, "test", ctx.clock() + 60, trigger)
    acquire(ctx.states, MODEL, lease, now=ctx.clock())
    record = execute(ctx, record)
    assert record.rows["production"] == 800
    assert record.time_range["since_alert_window"] == "2026-12-01T01:00:00Z"
    assert record.time_range["start"].startswith("2026-12-01T01:00:00")
    assert record.status == "registered" and record.gate["candidate"] > 0.9
    # without the window (a manual run) every recent row counts
    run = retrain(MODEL, ctx=world.ctx(keep_reference=False, recent_rows=0))
    assert run.rows["production"] == 1800 and run.time_range["since_alert_window"] is None
