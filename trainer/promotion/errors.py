"""Errors of the rollout controller."""

from __future__ import annotations


class PromotionError(Exception):
    """Base class of the rollout controller's errors."""


class RolloutPlanError(PromotionError, ValueError):
    """A ``[rollout]`` setting has a value we cannot use (the message names it)."""


class RolloutRefused(PromotionError):
    """An analysed rollout cannot start (unknown version, one already running …)."""
