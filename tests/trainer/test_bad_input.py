"""Bad input ends a run as failed (or skipped) with a clear reason and an event; nothing is
registered and the route is unchanged."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

from registry import Registry
from tests.trainer.conftest import (
    FEATURES,
    MODEL,
    World,
    concept,
    drifted_traffic,
    rows,
    write_traffic,
)
from trainer import retrain


def _unchanged(world: World) -> None:
    assert [mv.version for mv in world.registry.versions(MODEL)] == [1]
    assert world.registry.route(MODEL).champion == 1


@pytest.mark.parametrize(
    ("recipe", "expected"),
    [
        ("tests.trainer.recipes:broken", "ValueError: this recipe refuses"),
        ("tests.trainer.recipes:returns_nothing", "expected a fitted estimator"),
        ("tests.trainer.no_such_module:build", "cannot import 'tests.trainer.no_such_module'"),
        ("tests.trainer.recipes:missing", "has no function 'missing'"),
    ],
)
def test_a_failing_recipe_fails_the_run(world: World, recipe: str, expected: str) -> None:
    drifted_traffic(world)
    run = retrain(MODEL, ctx=world.ctx(recipe=recipe))
    assert run.status == "failed" and expected in (run.reason or ""), run.reason
    assert run.recipe == recipe
    failed = [e for e in world.registry.events(MODEL) if e.kind == "trainer.run.failed"]
    assert len(failed) == 1 and expected in failed[0].detail["reason"]
    _unchanged(world)


def test_a_user_recipe_and_builtin_candidates_compete(world: World) -> None:
    drifted_traffic(world)
    run = retrain(
        MODEL,
        ctx=world.ctx(recipe="tests.trainer.recipes:forest", keep_reference=False,
                      candidates=["champion", "linear"]),
    )  # fmt: skip
    assert run.status == "registered", run.reason
    names = {c["name"]: c for c in run.candidates}
    assert set(names) == {"champion", "linear"}
    assert all("accuracy" in c and c["fit_s"] >= 0 for c in names.values())
    best = max(names.values(), key=lambda c: c["accuracy"])
    assert run.recipe == best["recipe"]
    assert world.registry.get(MODEL, 2).lineage.recipe == best["recipe"]


def test_logged_rows_that_no_longer_match_the_schema_fail_the_run(world: World) -> None:
    X = rows(600, seed=9)
    write_traffic(world.logs, X, concept(X, drifted=True), features=["a", "b", "c", "d"])
    run = retrain(MODEL, ctx=world.ctx())
    assert run.status == "failed"
    assert "do not match the champion's feature schema" in (run.reason or "")
    assert "in_x0" in (run.reason or "")
    _unchanged(world)


def test_an_onnx_only_model_without_recipe_is_skipped(tmp_path) -> None:
    reg = Registry(str(tmp_path / "registry"))
    X = rows(300, seed=2).astype(np.float32)
    onnx = to_onnx(LogisticRegression().fit(X, concept(X, drifted=False)), X[:1],
                   options={"zipmap": False})  # fmt: skip
    reg.register(MODEL, onnx, reference=pl.DataFrame(X, schema=FEATURES))
    world = World(reg, tmp_path / "logs", tmp_path)
    drifted_traffic(world)
    run = retrain(MODEL, ctx=world.ctx())
    assert run.status == "skipped" and "stored as ONNX only" in (run.reason or "")
    assert "--recipe" in (run.reason or "")
    # with a recipe it is retrained, and judged against the ONNX champion
    run = retrain(MODEL, ctx=world.ctx(recipe="tests.trainer.recipes:forest"))
    assert run.status == "registered", run.reason
    assert run.gate["champion"] < 0.7 < run.gate["candidate"]


def test_a_log_store_that_cannot_be_reached_fails_the_run(world: World) -> None:
    ctx = world.ctx()
    ctx.logs_url = "s3://mlgate-missing-bucket/logs"
    ctx.storage_options = {"endpoint_url": "http://127.0.0.1:9", "key": "k", "secret": "s",
                           "config_kwargs": {"retries": {"max_attempts": 1},
                                             "connect_timeout": 1}}  # fmt: skip
    run = retrain(MODEL, ctx=ctx)
    assert run.status == "failed" and run.reason
    assert "127.0.0.1:9" in run.reason or "connect" in run.reason.lower(), run.reason
    _unchanged(world)


def test_the_model_features_are_those_of_the_champion(world: World) -> None:
    assert world.registry.get(MODEL, 1).input_schema.names == FEATURES
