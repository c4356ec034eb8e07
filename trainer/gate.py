"""The gate: candidate and champion scored on the same holdout, judged with an interval.

The candidate passes only when

- its improvement on the model's metric, candidate minus champion (sign turned so that
  positive is better), is at least ``margin`` x |champion's figure| at the **lower bound** of a
  paired bootstrap interval (both models scored on the same resampled rows), not only at the
  point estimate; and
- no class with at least ``min_class_rows`` holdout rows loses more than ``class_tolerance``
  of recall (classifiers).

Everything here is plain numpy over arrays: no files, no registry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HIGHER_IS_BETTER = {
    "accuracy": True,
    "f1": True,
    "roc_auc": True,
    "log_loss": False,
    "rmse": False,
    "mae": False,
}
_PER_ROW = ("accuracy", "rmse", "mae")  # metrics that are a mean of a per-row loss


@dataclass(frozen=True)
class Scored:
    """One model's outputs on the holdout: labels (or values) and class scores if any."""

    prediction: np.ndarray
    proba: np.ndarray | None = None  # (n, k) in the order of ``classes``


def score(model: Any, X: np.ndarray, classes: list[Any] | None) -> Scored:
    """Run ``model`` (a fitted estimator) on ``X``; probabilities reordered to ``classes``."""
    prediction = np.asarray(model.predict(X))
    proba = None
    if classes is not None and hasattr(model, "predict_proba"):
        try:
            raw = np.asarray(model.predict_proba(X), dtype=np.float64)
        except (AttributeError, NotImplementedError):
            raw = None
        if raw is not None:
            own = list(getattr(model, "classes_", classes))
            proba = np.zeros((len(X), len(classes)))
            for j, c in enumerate(own):
                if c in classes:
                    proba[:, classes.index(c)] = raw[:, j]
    return Scored(prediction, proba)


def _encode(y: np.ndarray, classes: list[Any]) -> np.ndarray:
    lookup = {str(c): i for i, c in enumerate(classes)}
    return np.array([lookup.get(str(v), -1) for v in y.tolist()], dtype=np.int64)


def metric_value(metric: str, y: np.ndarray, scored: Scored, classes: list[Any] | None) -> float:
    """One figure of ``metric`` on (y, scored).

    >>> metric_value("accuracy", np.array([0, 1, 1]), Scored(np.array([0, 1, 0])), [0, 1])
    0.6666666666666666
    """
    if metric in ("rmse", "mae"):
        err = np.asarray(scored.prediction, dtype=np.float64) - np.asarray(y, dtype=np.float64)
        return float(np.sqrt(np.mean(err**2))) if metric == "rmse" else float(np.mean(np.abs(err)))
    assert classes is not None
    truth = _encode(y, classes)
    if metric == "accuracy":
        return float(np.mean(_encode(scored.prediction, classes) == truth))
    if metric == "f1":
        from sklearn.metrics import f1_score

        pred = _encode(scored.prediction, classes)
        return float(
            f1_score(
                truth, pred, labels=list(range(len(classes))), average="macro", zero_division=0
            )
        )
    if scored.proba is None:
        raise ValueError(f"metric {metric!r} needs class probabilities; the model has none")
    if metric == "log_loss":
        p = np.clip(scored.proba[np.arange(len(truth)), truth], 1e-15, 1.0)
        return float(-np.mean(np.log(p)))
    from sklearn.metrics import roc_auc_score

    if len(classes) == 2:
        return float(roc_auc_score(truth, scored.proba[:, 1]))
    return float(
        roc_auc_score(truth, scored.proba, multi_class="ovr", labels=list(range(len(classes))))
    )


def _per_row_losses(metric: str, y: np.ndarray, s: Scored, classes: list[Any] | None) -> np.ndarray:
    if metric == "accuracy":
        assert classes is not None
        hits: np.ndarray = (_encode(s.prediction, classes) == _encode(y, classes)).astype(float)
        return hits
    err = np.asarray(s.prediction, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    losses: np.ndarray = err**2 if metric == "rmse" else np.abs(err)
    return losses


def _subset(s: Scored, idx: np.ndarray) -> Scored:
    return Scored(s.prediction[idx], None if s.proba is None else s.proba[idx])


def bootstrap_deltas(
    metric: str,
    y: np.ndarray,
    candidate: Scored,
    champion: Scored,
    classes: list[Any] | None,
    *,
    rounds: int,
    max_rows: int,
    seed: int = 0,
) -> np.ndarray:
    """Improvement (positive = candidate better) on ``rounds`` paired resamples."""
    rng = np.random.default_rng(seed)
    n = len(y)
    if n > max_rows:
        keep = rng.choice(n, size=max_rows, replace=False)
        y, candidate, champion = y[keep], _subset(candidate, keep), _subset(champion, keep)
        n = max_rows
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    out = np.empty(rounds)
    if metric in _PER_ROW:
        lc = _per_row_losses(metric, y, candidate, classes)
        lh = _per_row_losses(metric, y, champion, classes)
        for r in range(rounds):
            idx = rng.integers(0, n, size=n)
            a, b = lc[idx].mean(), lh[idx].mean()
            if metric == "rmse":
                a, b = math.sqrt(a), math.sqrt(b)
            out[r] = sign * (a - b)
        return out
    for r in range(rounds):
        idx = rng.integers(0, n, size=n)
        try:
            a = metric_value(metric, y[idx], _subset(candidate, idx), classes)
            b = metric_value(metric, y[idx], _subset(champion, idx), classes)
        except ValueError:  # a resample with one class only has no AUC
            out[r] = np.nan
            continue
        out[r] = sign * (a - b)
    return out[np.isfinite(out)]


def class_recalls(y: np.ndarray, s: Scored, classes: list[Any]) -> dict[str, tuple[float, int]]:
    """Recall and support of each class on the holdout."""
    truth, pred = _encode(y, classes), _encode(s.prediction, classes)
    out = {}
    for i, c in enumerate(classes):
        mask = truth == i
        support = int(mask.sum())
        out[str(c)] = (float(np.mean(pred[mask] == i)) if support else math.nan, support)
    return out


@dataclass
class Verdict:
    """The gate's decision and every figure behind it."""

    passed: bool
    reason: str
    metric: str
    candidate: float
    champion: float
    delta: float
    interval: tuple[float, float]
    required: float
    rows: int
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reason": self.reason,
            "metric": self.metric,
            "candidate": self.candidate,
            "champion": self.champion,
            "delta": self.delta,
            "interval": list(self.interval),
            "required": self.required,
            "rows": self.rows,
            "per_class": self.per_class,
        }


def judge(
    metric: str,
    y: np.ndarray,
    candidate: Scored,
    champion: Scored,
    classes: list[Any] | None,
    *,
    margin: float,
    confidence: float,
    rounds: int,
    max_rows: int,
    class_tolerance: float,
    min_class_rows: int,
) -> Verdict:
    """Compare ``candidate`` with ``champion`` on the holdout ``y``."""
    cand = metric_value(metric, y, candidate, classes)
    champ = metric_value(metric, y, champion, classes)
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    delta = sign * (cand - champ)
    required = margin * abs(champ)
    deltas = bootstrap_deltas(
        metric, y, candidate, champion, classes, rounds=rounds, max_rows=max_rows
    )
    tail = (1 - confidence) / 2
    if len(deltas):
        low, high = (float(v) for v in np.quantile(deltas, [tail, 1 - tail]))
    else:
        low, high = math.nan, math.nan
    per_class: dict[str, dict[str, float]] = {}
    worst: tuple[str, float] | None = None
    if classes is not None:
        a, b = class_recalls(y, candidate, classes), class_recalls(y, champion, classes)
        for c, (recall, support) in a.items():
            drop = b[c][0] - recall
            per_class[c] = {"candidate_recall": recall, "champion_recall": b[c][0], "rows": support}
            if (
                support >= min_class_rows
                and drop > class_tolerance
                and (worst is None or drop > worst[1])
            ):
                worst = (c, drop)
    figures = f"{metric} {cand:.4f} vs champion {champ:.4f}"
    interval = f"[{low:+.4f}, {high:+.4f}]"
    if not math.isfinite(low) or low < required:
        passed = False
        reason = (
            f"not better by the margin at the interval's lower bound: {figures}; improvement "
            f"{delta:+.4f}, {confidence:.0%} interval {interval}, required >= {required:.4f}"
        )
    elif worst is not None:
        passed = False
        reason = (
            f"class {worst[0]!r} recall drops by {worst[1]:.3f} (tolerance {class_tolerance}); "
            f"{figures}"
        )
    else:
        passed = True
        reason = (
            f"better: {figures}; improvement {delta:+.4f}, {confidence:.0%} interval {interval}"
        )
    return Verdict(
        passed, reason, metric, cand, champ, delta, (low, high), required, len(y), per_class
    )


class OnnxModel:
    """An ONNX champion scored with onnxruntime: ``predict`` (and ``predict_proba`` when the
    graph gives probabilities), so a recipe's candidate can be judged against it."""

    def __init__(self, data: bytes, classes: list[Any] | None) -> None:
        import onnxruntime as ort

        self._session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self.classes_ = classes

    def _run(self, X: np.ndarray) -> list[Any]:
        out: list[Any] = self._session.run(None, {self._input: np.asarray(X, dtype=np.float32)})
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self._run(X)[0]).reshape(len(X), -1)[:, 0]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        out = self._run(X)
        if len(out) < 2:
            raise AttributeError("the ONNX graph gives no probabilities")
        raw = out[1]
        if isinstance(raw, list) and raw and isinstance(raw[0], dict):
            keys = list(raw[0].keys())
            return np.array([[row[k] for k in keys] for row in raw], dtype=np.float64)
        return np.asarray(raw, dtype=np.float64)
