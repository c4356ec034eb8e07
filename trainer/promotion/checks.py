"""The checks of an analysed rollout: each turns counts from the log store into a verdict.

A verdict is ``pass``, ``fail`` or ``inconclusive`` (``skipped`` when a check does not apply)
and always carries its figures: ``n`` (the sample it was decided on), ``n_needed`` (the
sample a pass would need if the rates stay as observed), ``statistic`` and ``p_value`` (the
test), ``interval`` (the bounds the decision compared), ``effect`` (candidate against
champion) and ``threshold`` (what the interval was compared with).

The rule is the same for every check: it *fails* when the bound at ``fail_confidence`` is
on the wrong side of the threshold, it *passes* when the bound at ``confidence`` is on the
right side and the minimum sample is there, and it is *inconclusive* otherwise. A check is
never passed on no evidence: an empty window is inconclusive.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import msgspec

from trainer.promotion import stats

Outcome = Literal["pass", "fail", "inconclusive", "skipped"]
PASS: Outcome = "pass"
FAIL: Outcome = "fail"
INCONCLUSIVE: Outcome = "inconclusive"
SKIPPED: Outcome = "skipped"

CHECKS = ("error_rate", "latency", "agreement", "labelled")


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    """One check's decision and the figures behind it."""

    check: str
    outcome: Outcome
    n: int = 0
    n_needed: int | None = None
    statistic: float | None = None
    p_value: float | None = None
    interval: tuple[float, float] | None = None
    effect: float | None = None
    threshold: float | None = None
    reason: str = ""
    figures: dict[str, Any] = {}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


def _finite(x: float | None) -> float | None:
    return x if x is None or math.isfinite(x) else None


def error_rate(
    *,
    errors: int,
    requests: int,
    baseline_errors: int,
    baseline_requests: int,
    max_increase: float,
    confidence: float,
    fail_confidence: float,
    min_baseline: int,
) -> Verdict:
    """Candidate 5xx share against the champion's over the same window: Newcombe's interval
    of the difference and the pooled two-proportion z-test.

    >>> v = error_rate(errors=40, requests=400, baseline_errors=0, baseline_requests=400,
    ...                max_increase=0.01, confidence=0.95, fail_confidence=0.99, min_baseline=100)
    >>> v.outcome, round(v.effect, 3)
    ('fail', 0.1)
    """
    p1 = errors / requests if requests else 0.0
    p0 = baseline_errors / baseline_requests if baseline_requests else 0.0
    z, p_value = stats.two_proportion_z(errors, requests, baseline_errors, baseline_requests)
    figures = {"errors": errors, "requests": requests, "baseline_errors": baseline_errors,
               "baseline_requests": baseline_requests, "rate": p1, "baseline_rate": p0}  # fmt: skip
    common: dict[str, Any] = {"check": "error_rate", "n": requests, "statistic": z,
                              "p_value": p_value, "effect": p1 - p0, "threshold": max_increase,
                              "figures": figures}  # fmt: skip
    needed = stats.n_for_difference(p1, p0, max_increase, 1 - confidence)
    if requests == 0 or baseline_requests < min_baseline:
        why = (
            "no candidate requests yet"
            if requests == 0
            else f"champion has {baseline_requests} requests, {min_baseline} needed"
        )
        return Verdict(outcome=INCONCLUSIVE, n_needed=needed, reason=why, **common)
    fail_lo, _ = stats.newcombe_difference(
        errors, requests, baseline_errors, baseline_requests, 2 * (1 - fail_confidence)
    )
    lo, hi = stats.newcombe_difference(
        errors, requests, baseline_errors, baseline_requests, 2 * (1 - confidence)
    )
    if fail_lo > max_increase:
        return Verdict(
            outcome=FAIL, n_needed=needed, interval=(fail_lo, hi),
            reason=f"error rate {p1:.2%} vs champion {p0:.2%}: at least {fail_lo:+.2%} "
                   f"(bound at {fail_confidence:.0%}), more than the allowed {max_increase:+.2%}",
            **common,
        )  # fmt: skip
    if hi <= max_increase:
        return Verdict(
            outcome=PASS, n_needed=needed, interval=(lo, hi),
            reason=f"error rate {p1:.2%} vs champion {p0:.2%}: at most {hi:+.2%}",
            **common,
        )  # fmt: skip
    return Verdict(
        outcome=INCONCLUSIVE, n_needed=needed, interval=(lo, hi),
        reason=f"error rate difference up to {hi:+.2%} not yet below {max_increase:+.2%}",
        **common,
    )  # fmt: skip


def latency(
    *,
    latencies_ms: list[float],
    baseline_quantile_ms: float | None,
    baseline_requests: int,
    quantile: float,
    max_ratio: float,
    slack_ms: float,
    confidence: float,
    fail_confidence: float,
    min_baseline: int,
) -> Verdict:
    """The candidate's latency quantile against the champion's (same window), as an exact
    binomial test: with ``t = champion quantile * max_ratio + slack``, the candidate's
    ``quantile`` is below ``t`` exactly when fewer than ``1 - quantile`` of its requests take
    longer than ``t``. ``statistic`` is how many did; ``interval`` is the Clopper-Pearson
    interval of that share.

    >>> v = latency(latencies_ms=[1.0] * 400, baseline_quantile_ms=1.0, baseline_requests=400,
    ...             quantile=0.99, max_ratio=1.5, slack_ms=1.0, confidence=0.95,
    ...             fail_confidence=0.99, min_baseline=100)
    >>> v.outcome, v.statistic, v.threshold
    ('pass', 0.0, 2.5)
    """
    n = len(latencies_ms)
    share = 1.0 - quantile
    candidate_q = stats.quantile(latencies_ms, quantile)
    figures = {
        "quantile": quantile,
        "candidate_ms": candidate_q,
        "champion_ms": baseline_quantile_ms,
        "baseline_requests": baseline_requests,
    }
    needed = stats.zero_event_n(1 - confidence, share)
    if n == 0 or baseline_quantile_ms is None or baseline_requests < min_baseline:
        why = (
            "no candidate requests yet"
            if n == 0
            else f"champion has {baseline_requests} requests, {min_baseline} needed"
        )
        return Verdict(check="latency", outcome=INCONCLUSIVE, n=n, n_needed=needed,
                       reason=why, figures=figures)  # fmt: skip
    limit = baseline_quantile_ms * max_ratio + slack_ms
    over = sum(1 for x in latencies_ms if x > limit)
    p_fail = stats.binom_sf(over, n, share)  # P(this many or more | quantile exactly at t)
    p_pass = stats.binom_cdf(over, n, share)
    assert candidate_q is not None  # n > 0
    ratio = _finite(candidate_q / baseline_quantile_ms) if baseline_quantile_ms > 0 else None
    if over > 0:
        needed = max(needed, math.ceil(over / share * 1.5))
    common: dict[str, Any] = {"check": "latency", "n": n, "n_needed": needed,
                              "statistic": float(over), "effect": ratio, "threshold": limit,
                              "figures": {**figures, "over_threshold": over}}  # fmt: skip
    label = f"p{quantile * 100:g}"
    if p_fail < 1 - fail_confidence:
        lo, hi = stats.clopper_pearson(over, n, 2 * (1 - fail_confidence))
        return Verdict(
            outcome=FAIL, p_value=p_fail, interval=(lo, hi),
            reason=f"{label} {candidate_q:.2f} ms vs champion {baseline_quantile_ms:.2f} ms: "
                   f"{over} of {n} requests over {limit:.2f} ms",
            **common,
        )  # fmt: skip
    lo, hi = stats.clopper_pearson(over, n, 2 * (1 - confidence))
    if p_pass < 1 - confidence:
        return Verdict(
            outcome=PASS, p_value=p_pass, interval=(lo, hi),
            reason=f"{label} {candidate_q:.2f} ms vs champion {baseline_quantile_ms:.2f} ms "
                   f"(limit {limit:.2f} ms)",
            **common,
        )  # fmt: skip
    return Verdict(
        outcome=INCONCLUSIVE, p_value=p_pass, interval=(lo, hi),
        reason=f"{over} of {n} requests over {limit:.2f} ms: not yet shown below {label}",
        **common,
    )  # fmt: skip


def agreement(
    *,
    compared: int,
    agreed: int,
    min_agreement: float,
    confidence: float,
    fail_confidence: float,
    labels_decide: bool,
) -> Verdict:
    """The share of paired rows (same request, candidate and champion both answered) on which
    they agree, with its Clopper-Pearson interval. When labels decide, a low agreement is
    reported but does not fail: a better model must disagree where the champion is wrong.

    >>> agreement(compared=300, agreed=150, min_agreement=0.8, confidence=0.95,
    ...           fail_confidence=0.99, labels_decide=False).outcome
    'fail'
    """
    share = agreed / compared if compared else None
    needed = stats.zero_event_n(1 - confidence, 1 - min_agreement) if min_agreement < 1 else None
    common: dict[str, Any] = {"check": "agreement", "n": compared, "n_needed": needed,
                              "statistic": float(agreed), "effect": share,
                              "threshold": min_agreement,
                              "figures": {"compared": compared, "agreed": agreed}}  # fmt: skip
    if compared == 0:
        return Verdict(outcome=INCONCLUSIVE, reason="no paired requests yet", **common)
    lo, hi = stats.clopper_pearson(agreed, compared, 2 * (1 - confidence))
    fail_lo, fail_hi = stats.clopper_pearson(agreed, compared, 2 * (1 - fail_confidence))
    assert share is not None
    if labels_decide:
        return Verdict(
            outcome=SKIPPED, interval=(lo, hi),
            reason=f"agreement {share:.1%} of {compared}; the labelled check decides",
            **common,
        )  # fmt: skip
    if fail_hi < min_agreement:
        return Verdict(
            outcome=FAIL, interval=(fail_lo, fail_hi),
            reason=f"agreement with the champion {share:.1%} of {compared} paired requests: "
                   f"at most {fail_hi:.1%}, below {min_agreement:.0%}",
            **common,
        )  # fmt: skip
    if lo >= min_agreement:
        return Verdict(outcome=PASS, interval=(lo, hi),
                       reason=f"agreement {share:.1%} of {compared}", **common)  # fmt: skip
    return Verdict(
        outcome=INCONCLUSIVE, interval=(lo, hi),
        reason=f"agreement {share:.1%} of {compared}: not yet shown above {min_agreement:.0%}",
        **common,
    )  # fmt: skip


def labelled(
    *,
    pairs: int,
    better: int,
    worse: int,
    max_decrease: float,
    min_labelled: int,
    confidence: float,
    fail_confidence: float,
    required: bool,
    figures: dict[str, Any] | None = None,
) -> Verdict:
    """The labelled metric on paired rows (both versions answered the same request and its
    label has matured): ``better`` rows the candidate gets right and the champion wrong,
    ``worse`` the reverse. The exact McNemar test gives ``p_value``; the effect is the
    accuracy difference ``(better - worse) / pairs`` and its interval comes from the exact
    (Clopper-Pearson) interval of ``better / (better + worse)``.

    >>> v = labelled(pairs=200, better=40, worse=5, max_decrease=0.01, min_labelled=50,
    ...              confidence=0.95, fail_confidence=0.99, required=True)
    >>> v.outcome, round(v.effect, 3), v.p_value < 1e-6
    ('pass', 0.175, True)
    """
    discordant = better + worse
    effect = (better - worse) / pairs if pairs else None
    p_value = stats.mcnemar_exact(better, worse)
    common: dict[str, Any] = {"check": "labelled", "n": pairs, "statistic": float(discordant),
                              "p_value": p_value, "effect": effect, "threshold": -max_decrease,
                              "figures": {"pairs": pairs, "better": better, "worse": worse,
                                          **(figures or {})}}  # fmt: skip
    if not required:
        return Verdict(outcome=SKIPPED, reason="no labels for this model", **common)
    if pairs == 0:
        return Verdict(outcome=INCONCLUSIVE, n_needed=min_labelled,
                       reason="no matured labelled rows yet", **common)  # fmt: skip

    def bounds(level: float) -> tuple[float, float]:
        share = discordant / pairs
        lo, hi = stats.clopper_pearson(better, discordant, 2 * (1 - level))
        return share * (2 * lo - 1), share * (2 * hi - 1)

    # pairs needed for the lower bound to clear the margin at the observed discordance
    rate, gap = discordant / pairs, (effect or 0.0) + max_decrease
    z = stats.z_quantile(confidence)
    needed = max(min_labelled, math.ceil(z * z * rate / (gap * gap))) if gap > 0 else None
    fail_lo, fail_hi = bounds(fail_confidence)
    lo, hi = bounds(confidence)
    if discordant and fail_hi < -max_decrease:
        return Verdict(
            outcome=FAIL, n_needed=needed, interval=(fail_lo, fail_hi),
            reason=f"labelled accuracy {effect:+.1%} vs champion ({worse} rows worse, {better} "
                   f"better of {pairs}): at best {fail_hi:+.1%}, McNemar p={p_value:.2g}",
            **common,
        )  # fmt: skip
    if pairs >= min_labelled and lo >= -max_decrease:
        return Verdict(
            outcome=PASS, n_needed=needed, interval=(lo, hi),
            reason=f"labelled accuracy {effect:+.1%} vs champion ({better} better, {worse} "
                   f"worse of {pairs}), McNemar p={p_value:.2g}",
            **common,
        )  # fmt: skip
    why = (
        f"{pairs} matured labelled pairs, {min_labelled} needed"
        if pairs < min_labelled
        else f"accuracy difference down to {lo:+.1%} not yet above {-max_decrease:+.1%}"
    )
    return Verdict(outcome=INCONCLUSIVE, n_needed=needed, interval=(lo, hi), reason=why, **common)
