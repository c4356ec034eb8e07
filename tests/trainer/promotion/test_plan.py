"""``[rollout]`` settings: defaults, per-model overrides, clear errors naming the setting."""

from __future__ import annotations

import re

import pytest

from trainer.promotion import RolloutPlan, RolloutPlanError, parse_overrides, plan_from_config


def test_defaults_and_overrides() -> None:
    plan = plan_from_config({})
    assert plan == RolloutPlan() and plan.steps == [10.0, 50.0, 100.0] and plan.has_shadow
    config = {"rollout": {"max_wait_s": 120, "models": {"churn": {"steps": [25, 100]}}}}
    assert plan_from_config(config).max_wait_s == 120.0
    churn = plan_from_config(config, "churn")
    assert churn.steps == [25.0, 100.0] and churn.max_wait_s == 120.0
    assert "models" not in churn.to_dict()
    assert not plan.replace(shadow_percent=0).has_shadow


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"stepz": [1]}, "unknown field `stepz`"),
        ({"steps": [50, 10]}, "'steps': expected strictly increasing"),
        ({"steps": [0, 100]}, "'steps': expected a non-empty list of weights in (0, 100]"),
        ({"confidence": 1.5}, "'confidence': expected a share in [0.5, 1)"),
        ({"max_wait_s": 0}, "'max_wait_s': expected > 0"),
        ({"labels": "sometimes"}, "labels"),
        ({"min_labelled": "many"}, "Expected `int`"),
    ],
)
def test_bad_settings_are_named(table: dict[str, object], message: str) -> None:
    with pytest.raises(RolloutPlanError, match=re.escape(message)):
        plan_from_config({"rollout": table})


def test_not_a_table() -> None:
    with pytest.raises(RolloutPlanError, match=r"\[rollout\] must be a table"):
        plan_from_config({"rollout": 3})


def test_command_line_overrides() -> None:
    assert parse_overrides(["max_wait_s=60", "labels=off", "steps=[20, 100]"]) == {
        "max_wait_s": 60, "labels": "off", "steps": [20, 100],
    }  # fmt: skip
    with pytest.raises(RolloutPlanError, match="expected KEY=VALUE"):
        parse_overrides(["max_wait_s"])
