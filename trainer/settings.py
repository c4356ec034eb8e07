"""Trainer settings: triggers, data policy, recipes, the gate and the rollout it starts.

Read from the ``[trainer]`` table of ``mlgate.toml`` (keys are the field names below); one
model's overrides go in ``[trainer.models.<name>]`` (same keys). Every default is documented
on its field and sized for a small service: a run needs a few hundred labelled rows, takes
one alert at a time per model, and a model is retrained at most once per ``cooldown_s``.
"""

from __future__ import annotations

from typing import Any

import msgspec

CLASSIFICATION_METRICS = ("accuracy", "log_loss", "roc_auc", "f1")
REGRESSION_METRICS = ("rmse", "mae")
CANDIDATES = ("champion", "hist_gradient_boosting", "random_forest", "linear")


class TrainerSettingsError(ValueError):
    """A ``[trainer]`` setting has a value we cannot use."""


class TrainerSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything a retraining run can be tuned by. Units are in the names."""

    # -- triggers ---------------------------------------------------------------------------
    # the registry's audit trail is polled this often for new alerts (and the schedule checked)
    poll_interval_s: float = 2.0
    # event kinds that start a run (the monitor writes them with an ``alert_id`` in detail)
    trigger_events: tuple[str, ...] = ("model.drift.detected", "model.performance.degraded")
    # an alert older than this when a trainer first sees it is marked handled without a run
    max_alert_age_s: float = 86_400.0
    # an alert starts its run only this long after it was raised, so that the labels of the
    # drifted rows have time to arrive (later alerts wait behind it, in order)
    start_delay_s: float = 0.0
    # after a run of a model ends, its alerts are absorbed (no run) for this long
    cooldown_s: float = 300.0
    # a scheduled run per model every this many seconds; 0 = no schedule
    schedule_interval_s: float = 0.0
    # -- claims -----------------------------------------------------------------------------
    # a run's lease in the registry; renewed every lease_s / 3 while the run is alive, so a
    # trainer killed mid-run leaves a lease that the next trainer takes over once it expires
    lease_s: float = 60.0
    # how many times one trigger is attempted in all (the first try plus one take-over)
    max_attempts: int = 2
    # -- data -------------------------------------------------------------------------------
    # the newest labelled production rows used (older ones are left out); 0 = all
    recent_rows: int = 200_000
    # for a run started by an alert: only the rows logged since the start of the window the
    # alert names (the new concept), when at least min_labelled_rows of them are labelled;
    # else the newest recent_rows
    since_alert_window: bool = True
    # add the champion's reference sample (when it has a label column) to the training rows
    keep_reference: bool = True
    # sample weight of a reference row relative to a production row (estimators that take
    # ``sample_weight`` only)
    reference_weight: float = 1.0
    # the column of the reference sample that holds the label
    label_column: str = "label"
    # share of the labelled production rows, newest first, held out for the gate
    holdout_share: float = 0.25
    # share of rows between the last training row and the holdout that neither uses, so that
    # neighbouring (correlated) rows do not leak into the holdout
    holdout_gap_share: float = 0.02
    # a run with fewer labelled production rows ends without a candidate
    min_labelled_rows: int = 200
    # a holdout with fewer rows cannot judge a candidate: the run ends without one
    min_holdout_rows: int = 50
    # rows of the training data stored as the new version's reference sample
    reference_rows: int = 5_000
    # -- recipes ----------------------------------------------------------------------------
    # ``package.module:build`` (called as ``build(frame, target) -> fitted estimator``); None:
    # the champion's recipe from its manifest, else a clone of the champion's estimator
    recipe: str | None = None
    # estimators tried, best on the holdout wins: "champion" (the recipe above),
    # "hist_gradient_boosting", "random_forest", "linear" (logistic / ridge regression)
    candidates: tuple[str, ...] = ("champion",)
    # each candidate's fit is stopped (and the candidate skipped) past this
    fit_timeout_s: float = 600.0
    # BLAS/OpenMP threads of the fitting process, so serving on the same machine keeps its CPUs
    fit_threads: int = 1
    # nice level of the trainer's processes (``mlgate trainer run|retrain`` and the fitting
    # process): on a machine shared with the gateway, serving gets the CPU first; 0 = as is
    nice: int = 10
    # DuckDB threads of the data assembly
    data_threads: int = 2
    # -- gate -------------------------------------------------------------------------------
    # "auto": accuracy for classifiers, rmse for regressors; else one of accuracy, log_loss,
    # roc_auc, f1, rmse, mae
    metric: str = "auto"
    # required improvement relative to the champion's figure (0.01 = 1 % better), which must
    # hold at the lower bound of the bootstrap interval, not only at the point estimate
    margin: float = 0.01
    # a class whose recall drops by more than this (absolute) rejects the candidate
    class_tolerance: float = 0.05
    # classes with fewer holdout rows than this are not judged per class
    min_class_rows: int = 20
    # paired bootstrap rounds on the holdout, and the interval's confidence (two-sided)
    bootstrap_rounds: int = 300
    confidence: float = 0.9  # two-sided confidence of the bootstrap interval
    # holdout rows used by the bootstrap (a random subset past this; all for the point figure)
    bootstrap_max_rows: int = 50_000
    # -- rollout ----------------------------------------------------------------------------
    # start an analysed rollout (shadow -> canary steps -> champion, planned by the
    # [rollout] table, see trainer.promotion.RolloutPlan) of a registered candidate;
    # false: register it and leave routing alone
    rollout: bool = True
    # per-model overrides: [trainer.models.<name>] with any of the keys above
    models: dict[str, dict[str, Any]] = {}

    def __post_init__(self) -> None:
        positive = {
            "poll_interval_s": self.poll_interval_s,
            "lease_s": self.lease_s,
            "max_attempts": self.max_attempts,
            "min_labelled_rows": self.min_labelled_rows,
            "min_holdout_rows": self.min_holdout_rows,
            "reference_rows": self.reference_rows,
            "fit_timeout_s": self.fit_timeout_s,
            "fit_threads": self.fit_threads,
            "data_threads": self.data_threads,
            "bootstrap_rounds": self.bootstrap_rounds,
            "bootstrap_max_rows": self.bootstrap_max_rows,
        }
        for name, value in positive.items():
            if value <= 0:
                raise TrainerSettingsError(f"trainer setting {name!r}: expected > 0, got {value!r}")
        for name, value in {
            "max_alert_age_s": self.max_alert_age_s,
            "start_delay_s": self.start_delay_s,
            "cooldown_s": self.cooldown_s,
            "schedule_interval_s": self.schedule_interval_s,
            "recent_rows": self.recent_rows,
            "reference_weight": self.reference_weight,
            "margin": self.margin,
            "class_tolerance": self.class_tolerance,
            "nice": self.nice,
        }.items():
            if value < 0:
                raise TrainerSettingsError(
                    f"trainer setting {name!r}: expected >= 0, got {value!r}"
                )
        for name, share in (
            ("holdout_share", self.holdout_share),
            ("holdout_gap_share", self.holdout_gap_share),
            ("confidence", self.confidence),
        ):
            if not 0 < share < 1 and not (name == "holdout_gap_share" and share == 0):
                raise TrainerSettingsError(
                    f"trainer setting {name!r}: expected a share in (0, 1), got {share!r}"
                )
        if self.holdout_share + self.holdout_gap_share >= 1:
            raise TrainerSettingsError(
                "trainer settings: holdout_share + holdout_gap_share must leave rows to train "
                f"on, got {self.holdout_share} + {self.holdout_gap_share}"
            )
        allowed = ("auto", *CLASSIFICATION_METRICS, *REGRESSION_METRICS)
        if self.metric not in allowed:
            raise TrainerSettingsError(
                f"trainer setting 'metric': expected one of {', '.join(allowed)}, "
                f"got {self.metric!r}"
            )
        unknown = [c for c in self.candidates if c not in CANDIDATES]
        if unknown or not self.candidates:
            raise TrainerSettingsError(
                f"trainer setting 'candidates': expected a non-empty list of "
                f"{', '.join(CANDIDATES)}, got {self.candidates!r}"
            )
        if self.recipe is not None and not _is_entry_point(self.recipe):
            raise TrainerSettingsError(
                f"trainer setting 'recipe': expected 'package.module:function', got {self.recipe!r}"
            )

    @classmethod
    def from_mapping(cls, values: dict[str, Any] | None = None) -> TrainerSettings:
        """Build from a ``[trainer]`` table (unknown keys and wrong types are refused)."""
        try:
            return msgspec.convert(dict(values or {}), cls, strict=False)
        except msgspec.ValidationError as exc:
            raise TrainerSettingsError(f"[trainer] settings: {exc}") from exc

    def for_model(self, name: str) -> TrainerSettings:
        """These settings with ``[trainer.models.<name>]`` applied."""
        override = self.models.get(name)
        if not override:
            return self
        if "models" in override:
            raise TrainerSettingsError(f"[trainer.models.{name}]: cannot nest 'models'")
        merged = {**msgspec.to_builtins(self), **override, "models": {}}
        try:
            return msgspec.convert(merged, TrainerSettings, strict=False)
        except msgspec.ValidationError as exc:
            raise TrainerSettingsError(f"[trainer.models.{name}] settings: {exc}") from exc

    def metric_for(self, task: str) -> str:
        """The gate's metric for a task: the configured one, checked against the task.

        >>> TrainerSettings().metric_for("regression")
        'rmse'
        """
        if self.metric == "auto":
            return "accuracy" if task == "classification" else "rmse"
        allowed = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
        if self.metric not in allowed:
            raise TrainerSettingsError(
                f"trainer setting 'metric': {self.metric!r} does not apply to {task}; "
                f"expected one of {', '.join(allowed)}"
            )
        return self.metric


def _is_entry_point(value: str) -> bool:
    """``package.module:function`` with identifiers on both sides.

    >>> _is_entry_point("my_pkg.recipes:build"), _is_entry_point("build")
    (True, False)
    """
    module, sep, func = value.partition(":")
    return bool(sep) and all(p.isidentifier() for p in module.split(".")) and func.isidentifier()
