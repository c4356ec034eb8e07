"""From evidence to verdicts: the four checks of one rollout step, with the plan's figures."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainer.promotion import checks
from trainer.promotion.checks import SKIPPED, Verdict

if TYPE_CHECKING:
    from trainer.promotion.evidence import Evidence
    from trainer.promotion.plan import RolloutPlan


def labels_required(plan: RolloutPlan, evidence: Evidence) -> bool:
    """Whether the labelled check must pass: always, never, or (``auto``) when the model has
    feedback in the log store."""
    if plan.labels == "required":
        return True
    if plan.labels == "off":
        return False
    return evidence.has_feedback


def analyse(evidence: Evidence, plan: RolloutPlan) -> list[Verdict]:
    """The verdicts of ``error_rate``, ``latency``, ``agreement`` and ``labelled``.

    Errors and latency compare the candidate with the champion over the step's window; when
    the champion has too few requests there (a step at 100 % sends it none) its figures
    since the rollout began are the baseline instead, and ``figures.baseline_window`` says
    so. Agreement and the labelled metric use the pairs of the whole rollout.
    """
    baseline, baseline_window = evidence.champion, "step"
    if baseline.requests < plan.min_baseline_requests:
        baseline, baseline_window = evidence.champion_rollout, "rollout"
    cand = evidence.candidate
    error = checks.error_rate(
        errors=cand.errors, requests=cand.requests,
        baseline_errors=baseline.errors, baseline_requests=baseline.requests,
        max_increase=plan.max_error_rate_increase, confidence=plan.confidence,
        fail_confidence=plan.fail_confidence, min_baseline=plan.min_baseline_requests,
    )  # fmt: skip
    latency = checks.latency(
        latencies_ms=evidence.latencies_ms, baseline_quantile_ms=baseline.quantile_ms,
        baseline_requests=baseline.requests, quantile=plan.latency_quantile,
        max_ratio=plan.max_latency_ratio, slack_ms=plan.latency_slack_ms,
        confidence=plan.confidence, fail_confidence=plan.fail_confidence,
        min_baseline=plan.min_baseline_requests,
    )  # fmt: skip
    required = labels_required(plan, evidence)
    if plan.shadow_percent <= 0:
        why = "shadow_percent is 0: no paired requests to compare"
        agreement = Verdict(check="agreement", outcome=SKIPPED, reason=why)
        labelled = Verdict(check="labelled", outcome=SKIPPED, reason=why)
    else:
        agreement = checks.agreement(
            compared=evidence.compared, agreed=evidence.agreed, min_agreement=plan.min_agreement,
            confidence=plan.confidence, fail_confidence=plan.fail_confidence,
            labels_decide=required,
        )  # fmt: skip
        labelled = checks.labelled(
            pairs=evidence.pairs, better=evidence.better, worse=evidence.worse,
            max_decrease=plan.max_metric_decrease, min_labelled=plan.min_labelled,
            confidence=plan.confidence, fail_confidence=plan.fail_confidence,
            required=required, figures={"matured": evidence.matured},
        )  # fmt: skip
    for verdict in (error, latency):
        verdict.figures["baseline_window"] = baseline_window
    return [error, latency, agreement, labelled]
