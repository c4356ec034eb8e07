"""Analysed rollouts: shadow, canary steps and promotion decided from the log store.

Public surface::

    RolloutPlan(...) / RolloutPlan.from_mapping(config["rollout"])     settings, defaults
    RolloutController(registry, logs_url, plan)                         .begin .tick .status
    Verdict, Decision                                                   figures of a decision
"""

from trainer.promotion.checks import CHECKS, Verdict
from trainer.promotion.controller import EVENTS, Decision, RolloutController, is_analysed
from trainer.promotion.errors import PromotionError, RolloutPlanError, RolloutRefused
from trainer.promotion.plan import RolloutPlan, parse_overrides, plan_from_config

__all__ = [
    "CHECKS",
    "EVENTS",
    "Decision",
    "PromotionError",
    "RolloutController",
    "RolloutPlan",
    "RolloutPlanError",
    "RolloutRefused",
    "Verdict",
    "is_analysed",
    "parse_overrides",
    "plan_from_config",
]
