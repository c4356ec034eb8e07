"""Prometheus figures of the rollouts a controller drives, in the controller's own
``CollectorRegistry`` (exported by whichever process runs the controller).

- ``mlgate_rollout_phase{model, phase}``: 1 for the phase a model's analysed rollout is in
  (``shadow`` or ``canary``), 0 for the other; no series once the rollout has ended.
- ``mlgate_rollout_weight{model}``: the candidate's canary weight in percent (0 in shadow).
- ``mlgate_rollout_check{model, check, figure}``: each check's latest verdict: ``figure`` is
  ``outcome`` (1 pass, 0 inconclusive, -1 fail; skipped checks are left out), ``n``,
  ``n_needed``, ``statistic``, ``p_value``, ``lower``, ``upper``, ``effect``, ``threshold``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from trainer.promotion.checks import FAIL, INCONCLUSIVE, PASS

if TYPE_CHECKING:
    from collections.abc import Iterator

    from prometheus_client.metrics_core import Metric

    from trainer.promotion.checks import Verdict

PHASES = ("shadow", "canary")
_OUTCOME = {PASS: 1.0, INCONCLUSIVE: 0.0, FAIL: -1.0}


class RolloutMetrics:
    """The latest phase, weight and verdicts per model, collected on scrape."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()
        self._state: dict[str, tuple[str, float, list[Verdict]]] = {}
        self.registry.register(self)  # type: ignore[arg-type]

    def update(self, model: str, phase: str, weight: float, verdicts: list[Verdict]) -> None:
        with self._lock:
            self._state[model] = (phase, weight, list(verdicts))

    def clear(self, model: str) -> None:
        with self._lock:
            self._state.pop(model, None)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            state = dict(self._state)
        phase = GaugeMetricFamily(
            "mlgate_rollout_phase", "Phase of the model's analysed rollout (1: current).",
            labels=["model", "phase"],
        )  # fmt: skip
        weight = GaugeMetricFamily(
            "mlgate_rollout_weight", "Canary weight of the rollout's candidate, percent.",
            labels=["model"],
        )  # fmt: skip
        check = GaugeMetricFamily(
            "mlgate_rollout_check",
            "Latest verdict of each rollout check and its figures (outcome: 1 pass, "
            "0 inconclusive, -1 fail).",
            labels=["model", "check", "figure"],
        )
        for model, (current, pct, verdicts) in sorted(state.items()):
            for name in PHASES:
                phase.add_metric([model, name], 1.0 if name == current else 0.0)
            weight.add_metric([model], pct)
            for v in verdicts:
                if v.outcome not in _OUTCOME:
                    continue
                figures: dict[str, float | None] = {
                    "outcome": _OUTCOME[v.outcome], "n": float(v.n),
                    "n_needed": None if v.n_needed is None else float(v.n_needed),
                    "statistic": v.statistic, "p_value": v.p_value,
                    "lower": v.interval[0] if v.interval else None,
                    "upper": v.interval[1] if v.interval else None,
                    "effect": v.effect, "threshold": v.threshold,
                }  # fmt: skip
                for figure, value in figures.items():
                    if value is not None:
                        check.add_metric([model, v.check, figure], value)
        yield phase
        yield weight
        yield check
