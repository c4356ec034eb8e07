"""Each check's verdict: no evidence is never a pass, a clear failure fails, the figures
behind a verdict are the ones it was decided on."""

from __future__ import annotations

from typing import Any

import pytest

from trainer.promotion import checks, stats

LEVELS: dict[str, Any] = {"confidence": 0.95, "fail_confidence": 0.99}


def _errors(e: int, n: int, be: int, bn: int, **kw: Any) -> checks.Verdict:
    return checks.error_rate(errors=e, requests=n, baseline_errors=be, baseline_requests=bn,
                             max_increase=kw.get("margin", 0.01), min_baseline=100,
                             **LEVELS)  # fmt: skip


@pytest.mark.parametrize(
    ("counts", "outcome"),
    [
        ((0, 0, 0, 1000), "inconclusive"),  # no candidate requests: never a pass
        ((0, 50, 0, 50), "inconclusive"),  # champion below min_baseline
        ((0, 20, 0, 1000), "inconclusive"),  # no errors in 20 requests is not evidence
        ((0, 2000, 0, 2000), "pass"),
        ((3, 2000, 2, 2000), "pass"),
        ((60, 300, 0, 300), "fail"),
        ((12, 1000, 0, 1000), "inconclusive"),  # 1.2 % vs 0: not yet beyond the 1 % margin
    ],
)
def test_error_rate(counts: tuple[int, int, int, int], outcome: str) -> None:
    v = _errors(*counts)
    assert v.outcome == outcome, v.reason
    e, n, be, bn = counts
    if n and bn >= 100:
        level = 0.99 if outcome == "fail" else 0.95
        lo, hi = stats.newcombe_difference(e, n, be, bn, 2 * (1 - level))
        assert v.interval is not None and v.interval[0] == pytest.approx(lo)
        assert v.effect == pytest.approx(e / n - be / bn) and v.threshold == 0.01


def test_error_rate_sample_size_is_what_a_pass_needs() -> None:
    v = _errors(0, 100, 0, 1000)
    assert v.outcome == "inconclusive" and v.n_needed is not None
    assert _errors(0, v.n_needed * 2, 0, 1000).outcome == "pass"


def _latency(cand: list[float], base_q: float | None, base_n: int = 500) -> checks.Verdict:
    return checks.latency(latencies_ms=cand, baseline_quantile_ms=base_q,
                          baseline_requests=base_n, quantile=0.99, max_ratio=1.5,
                          slack_ms=1.0, min_baseline=100, **LEVELS)  # fmt: skip


def test_latency() -> None:
    assert _latency([], 2.0).outcome == "inconclusive"
    assert _latency([1.0] * 1000, None, 0).outcome == "inconclusive"
    # 298 fast requests cannot show a p99 below the limit at 95 %; 299 can
    assert _latency([1.0] * 298, 2.0).outcome == "inconclusive"
    assert _latency([1.0] * 299, 2.0).outcome == "pass"
    slow = _latency([1.0] * 90 + [50.0] * 10, 2.0)
    assert slow.outcome == "fail" and slow.statistic == 10 and slow.threshold == 4.0
    assert slow.p_value is not None and slow.p_value < 0.01
    assert slow.p_value == pytest.approx(stats.binom_sf(10, 100, 0.01))


def test_agreement() -> None:
    kw: dict[str, Any] = {"min_agreement": 0.8, **LEVELS}
    assert checks.agreement(compared=0, agreed=0, labels_decide=False, **kw).outcome == (
        "inconclusive"
    )
    assert checks.agreement(compared=400, agreed=390, labels_decide=False, **kw).outcome == "pass"
    low = checks.agreement(compared=400, agreed=200, labels_decide=False, **kw)
    assert low.outcome == "fail" and low.effect == 0.5
    # with labels, a better model's disagreement does not fail it
    assert checks.agreement(compared=400, agreed=200, labels_decide=True, **kw).outcome == (
        "skipped"
    )


def _labelled(pairs: int, better: int, worse: int, required: bool = True) -> checks.Verdict:
    return checks.labelled(pairs=pairs, better=better, worse=worse, max_decrease=0.01,
                           min_labelled=50, required=required, **LEVELS)  # fmt: skip


def test_labelled() -> None:
    assert _labelled(0, 0, 0).outcome == "inconclusive"
    assert _labelled(0, 0, 0, required=False).outcome == "skipped"
    assert _labelled(40, 20, 0).outcome == "inconclusive"  # below min_labelled
    assert _labelled(200, 40, 5).outcome == "pass"
    assert _labelled(200, 0, 0).outcome == "pass"  # identical on 200 labelled rows
    worse = _labelled(300, 5, 60)
    assert worse.outcome == "fail"
    assert worse.p_value == pytest.approx(stats.mcnemar_exact(5, 60))
    assert worse.effect == pytest.approx(-55 / 300)
    # a small difference over few discordant pairs stays inconclusive
    assert _labelled(100, 5, 8).outcome == "inconclusive"
