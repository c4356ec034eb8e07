"""Model metrics of a window from predictions joined with feedback on ``request_id``.

Labels may arrive long after the predictions: a window's metrics are recomputed whenever
the number of its labelled rows changes.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from monitor.store import MonitorStore
    from monitor.store.rows import LabelledRow


def window_performance(
    store: MonitorStore, window_id: int, *, task: str, classes: list[str]
) -> dict[str, Any]:
    """Accuracy, F1, ROC AUC, log loss (classification) or MAE, RMSE (regression)."""
    rows = store.labelled_rows(window_id)
    out: dict[str, Any] = {"labelled_rows": len(rows)}
    if not rows:
        return out
    if task == "classification":
        out.update(classification_metrics(rows, classes))
    else:
        out.update(regression_metrics(rows))
    return out


def classification_metrics(rows: list[LabelledRow], classes: list[str]) -> dict[str, Any]:
    """A row's prediction is a class code: k >= 1 is ``classes[k - 1]``."""
    # imported here, not at module level: only windows with labels need scikit-learn
    from sklearn import metrics as skm

    y_pred = [
        classes[int(r.prediction) - 1]
        if r.prediction is not None and 1 <= r.prediction <= len(classes)
        else "(none)"
        for r in rows
    ]
    y_true = [str(r.label) for r in rows]
    out: dict[str, Any] = {"accuracy": float(skm.accuracy_score(y_true, y_pred))}
    labels = classes or sorted(set(y_true) | set(y_pred))
    binary = len(labels) == 2
    out["f1"] = float(
        skm.f1_score(
            y_true,
            y_pred,
            labels=labels,
            average="binary" if binary else "macro",
            pos_label=labels[-1] if binary else 1,
            zero_division=0,
        )
    )
    probas = [r.probas for r in rows]
    out["roc_auc"] = out["log_loss"] = None
    if classes and all(p is not None and len(p) == len(classes) for p in probas):
        proba = np.asarray(probas, dtype=np.float64)
        known = [t in classes for t in y_true]
        if all(known) and np.isfinite(proba).all():
            proba = np.clip(proba, 1e-15, 1.0)
            proba = proba / proba.sum(axis=1, keepdims=True)
            out["log_loss"] = float(skm.log_loss(y_true, proba, labels=classes))
            present = set(y_true)
            if len(present) > 1:
                if binary:
                    y = np.array([t == classes[1] for t in y_true])
                    out["roc_auc"] = float(skm.roc_auc_score(y, proba[:, 1]))
                elif present == set(classes):
                    out["roc_auc"] = float(
                        skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=classes)
                    )
    return out


def regression_metrics(rows: list[LabelledRow]) -> dict[str, Any]:
    pairs = [
        (r.prediction, r.label_value)
        for r in rows
        if r.prediction is not None
        and r.label_value is not None
        and math.isfinite(r.prediction)
        and math.isfinite(r.label_value)
    ]
    if not pairs:
        return {"mae": None, "rmse": None}
    pred = np.array([p for p, _ in pairs])
    true = np.array([t for _, t in pairs])
    err = pred - true
    return {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err**2).mean()))}
