"""``RolloutPlan``: how an analysed rollout moves a candidate from shadow to champion.

Read from the ``[rollout]`` table of ``mlgate.toml`` (keys are the field names below); one
model's overrides go in ``[rollout.models.<name>]``. The plan a rollout started with is stored
in its route (``route.json``), so any process that continues it uses the same figures.

The defaults are sized for a small service: at a few tens of requests per second a clearly
better candidate spends ~30 s in shadow and ~30-40 s on each of three canary steps, so it is
champion within about three minutes of ``begin``; at lower traffic each phase waits for its
minimum evidence (never passed on none) and is aborted after ``max_wait_s``.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from trainer.promotion.errors import RolloutPlanError

LabelPolicy = Literal["auto", "required", "off"]


class RolloutPlan(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every figure an analysed rollout is decided by. Units are in the names."""

    # -- shadow ------------------------------------------------------------------------------
    # percent of requests copied to the candidate, in shadow and (for paired evidence) during
    # the canary steps too; 0 with shadow_s = 0 and shadow_requests = 0 skips the shadow phase
    shadow_percent: float = 100.0
    # the shadow phase lasts this long, or until the candidate answered shadow_requests
    # copies, whichever first; then it ends as soon as every check passes
    shadow_s: float = 30.0
    shadow_requests: int = 1_000  # see shadow_s
    # -- canary ------------------------------------------------------------------------------
    # canary weights in percent, strictly increasing; after the last one passes: champion
    steps: list[float] = msgspec.field(default_factory=lambda: [10.0, 50.0, 100.0])
    # each step is held at least this long ...
    step_interval_s: float = 30.0
    # ... and until the candidate has answered this many requests as the canary
    step_min_requests: int = 100
    # a phase whose checks are still inconclusive this long after it began is aborted
    # (rolled back with the figures that were missing)
    max_wait_s: float = 300.0
    # the log store is analysed at most this often per rollout (tick() in between is cheap)
    analysis_interval_s: float = 5.0
    # -- statistics --------------------------------------------------------------------------
    # a check passes when its one-sided bound at this confidence is inside the threshold
    confidence: float = 0.95
    # a check fails (rollback) when its one-sided bound at this confidence is outside; higher
    # than ``confidence`` because the analysis looks again every analysis_interval_s
    fail_confidence: float = 0.99
    # champion requests needed in the window before the candidate is compared with it
    min_baseline_requests: int = 100
    # error rate (5xx share of requests): candidate minus champion must stay below this
    max_error_rate_increase: float = 0.01
    # latency: the candidate's latency_quantile must stay below the champion's times
    # max_latency_ratio plus latency_slack_ms (the slack keeps sub-millisecond models from
    # failing on scheduler noise)
    latency_quantile: float = 0.99
    max_latency_ratio: float = 1.5  # see latency_quantile
    latency_slack_ms: float = 5.0  # see latency_quantile
    # agreement with the champion on the same requests (shadow pairs): a lower share fails,
    # unless labels are used (a better model is expected to disagree where the champion errs)
    min_agreement: float = 0.5
    # regressors agree when |candidate - champion| <= rel_tol * |champion| + 1e-9
    agreement_rel_tol: float = 0.05
    # -- labels ------------------------------------------------------------------------------
    # "auto": the labelled check is required when the model has feedback in the log store;
    # "required": always (a model without labels never passes); "off": never used
    labels: LabelPolicy = "auto"
    # only rows at least this old count for the labelled check (their labels have had time to
    # arrive: counting fresh rows would judge on the few labels that come back fastest)
    label_maturity_s: float = 20.0
    # paired labelled rows needed before the labelled check can pass
    min_labelled: int = 50
    # the candidate's accuracy (classifiers; for regressors the share of rows it predicts
    # closer minus the share it predicts farther) may be at most this much below the champion's
    max_metric_decrease: float = 0.01
    # per-model overrides: [rollout.models.<name>] with any of the keys above
    models: dict[str, dict[str, Any]] = {}

    def __post_init__(self) -> None:
        _check(self)

    @classmethod
    def from_mapping(cls, values: dict[str, Any] | None = None) -> RolloutPlan:
        """Build from a ``[rollout]`` table (unknown keys and wrong types are refused).

        >>> RolloutPlan.from_mapping({"steps": [20, 100]}).steps
        [20.0, 100.0]
        """
        try:
            return msgspec.convert(dict(values or {}), cls, strict=False)
        except msgspec.ValidationError as exc:
            raise RolloutPlanError(f"[rollout] settings: {exc}") from exc

    def for_model(self, name: str) -> RolloutPlan:
        """This plan with ``[rollout.models.<name>]`` applied."""
        override = self.models.get(name)
        if not override:
            return self
        if "models" in override:
            raise RolloutPlanError(f"[rollout.models.{name}]: cannot nest 'models'")
        merged = {**self.to_dict(), **override}
        try:
            return msgspec.convert(merged, RolloutPlan, strict=False)
        except msgspec.ValidationError as exc:
            raise RolloutPlanError(f"[rollout.models.{name}] settings: {exc}") from exc

    def replace(self, **changes: Any) -> RolloutPlan:
        """A copy with ``changes`` (validated like the table)."""
        return RolloutPlan.from_mapping({**self.to_dict(), **changes, "models": self.models})

    def to_dict(self) -> dict[str, Any]:
        """The plan as stored in the route (without per-model overrides)."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        out.pop("models", None)
        return out

    @property
    def has_shadow(self) -> bool:
        return self.shadow_percent > 0 and (self.shadow_s > 0 or self.shadow_requests > 0)


def _check(plan: RolloutPlan) -> None:
    def bad(name: str, expected: str, value: object) -> RolloutPlanError:
        return RolloutPlanError(f"rollout setting {name!r}: expected {expected}, got {value!r}")

    for name in ("step_interval_s", "max_wait_s", "max_latency_ratio"):
        value = getattr(plan, name)
        if not value > 0:
            raise bad(name, "> 0", value)
    for name in (
        "shadow_s", "shadow_requests", "step_min_requests", "analysis_interval_s",
        "min_baseline_requests", "max_error_rate_increase", "latency_slack_ms",
        "label_maturity_s", "min_labelled", "max_metric_decrease", "agreement_rel_tol",
    ):  # fmt: skip
        value = getattr(plan, name)
        if not value >= 0:
            raise bad(name, ">= 0", value)
    for name in ("confidence", "fail_confidence", "latency_quantile"):
        value = getattr(plan, name)
        if not 0.5 <= value < 1:
            raise bad(name, "a share in [0.5, 1)", value)
    if not 0 <= plan.min_agreement <= 1:
        raise bad("min_agreement", "a share in [0, 1]", plan.min_agreement)
    if not 0 <= plan.shadow_percent <= 100:
        raise bad("shadow_percent", "a percent in [0, 100]", plan.shadow_percent)
    steps = plan.steps
    if not steps or any(not 0 < s <= 100 for s in steps):
        raise bad("steps", "a non-empty list of weights in (0, 100]", steps)
    if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
        raise bad("steps", "strictly increasing weights", steps)


def plan_from_config(config: dict[str, Any] | None, model: str | None = None) -> RolloutPlan:
    """The plan of ``mlgate.toml``'s ``[rollout]`` table (defaults when absent), with the
    model's ``[rollout.models.<name>]`` overrides when ``model`` is given.

    >>> plan_from_config({"rollout": {"steps": [25, 100], "models": {"m": {"max_wait_s": 60}}}},
    ...                  "m").max_wait_s
    60.0
    """
    table = (config or {}).get("rollout", {})
    if not isinstance(table, dict):
        raise RolloutPlanError(
            f"mlgate.toml: [rollout] must be a table, got {type(table).__name__}"
        )
    plan = RolloutPlan.from_mapping(table)
    return plan.for_model(model) if model is not None else plan


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings (``--plan`` flags) as a mapping; values are read as TOML
    (numbers, booleans, lists, quoted strings), else kept as text.

    >>> parse_overrides(["max_wait_s=60", "steps=[20, 100]", "labels=off"])
    {'max_wait_s': 60, 'steps': [20, 100], 'labels': 'off'}
    """
    import tomllib

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise RolloutPlanError(f"rollout plan override: expected KEY=VALUE, got {item!r}")
        try:
            out[key] = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = raw.strip()
    return out
