"""No false drift on stationary traffic for forest, boosting and linear models, on features and
on the prediction and score columns, against a small reference (where sampling noise alone
once read Wasserstein / std ~0.1); a real shift of the same size is still caught."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from gateway.runtimes import compile_model
from monitor import MonitorConfig
from registry import Registry
from tests.monitor.conftest import T0_US, Logs, feature_names

D = 6
ROWS = 1_000_000
SEGMENT_ROWS = 250_000
MODELS = {
    "forest": lambda: RandomForestClassifier(n_estimators=30, max_depth=8, random_state=0),
    "boosting": lambda: HistGradientBoostingClassifier(max_iter=40, random_state=0),
    "linear": lambda: LogisticRegression(),
}


class Served:
    """Scores as the gateway computes them: the compiled runtime on float32 inputs."""

    def __init__(self, estimator: Any) -> None:
        self.runtime = compile_model(estimator, backend="numba")

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.runtime.predict(X.astype(np.float32))["predict_proba"])


def register(registry: Registry, name: str, ref_rows: int) -> tuple[Any, Served]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20_000, D))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=len(x)) > 0).astype(int)
    estimator = MODELS[name]().fit(x.astype(np.float32), y)
    reference = pl.DataFrame({n: x[:ref_rows, j] for j, n in enumerate(feature_names(D))})
    return registry.register(name, estimator, reference=reference), Served(estimator)


def flagged(m: Any) -> list[tuple[Any, ...]]:
    return m.store.con.execute(
        "SELECT role, name, count(*) FILTER (wasserstein_drift OR psi_drift OR js_drift),"
        " count(*) FILTER (drifted), max(wasserstein), max(js) FROM results"
        " GROUP BY ALL HAVING count(*) FILTER (wasserstein_drift OR psi_drift OR js_drift) > 0"
    ).fetchall()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_a_million_stationary_rows_raise_no_drift(
    registry: Registry, logs: Logs, make_monitor: Any, name: str
) -> None:
    mv, served = register(registry, name, ref_rows=1_000)
    rng = np.random.default_rng(12)
    for k in range(ROWS // SEGMENT_ROWS):
        logs.predictions(mv, rng.normal(size=(SEGMENT_ROWS, D)), estimator=served,
                         start_us=T0_US + k * SEGMENT_ROWS * 1000)  # fmt: skip
    m = make_monitor(MonitorConfig(keep_prediction_rows=False, alert_on="feature"))
    result = m.run_once()
    assert result.rows == ROWS
    roles = {r[0] for r in m.store.con.execute("SELECT DISTINCT role FROM results").fetchall()}
    assert roles >= {"feature", "prediction", "score"}
    assert flagged(m) == []  # not one window of any column crossed a threshold
    assert result.events == []


@pytest.mark.parametrize("name", ["forest", "linear"])
def test_a_real_shift_is_still_detected(
    registry: Registry, logs: Logs, make_monitor: Any, name: str
) -> None:
    mv, served = register(registry, name, ref_rows=1_000)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(10_000, D))
    x[5_000:, 0] += 0.5  # the model's main input moves by half a standard deviation
    logs.predictions(mv, x, estimator=served)
    m = make_monitor(MonitorConfig(keep_prediction_rows=False, alert_on="feature"))
    m.run_once()
    drifted = m.store.con.execute(
        "SELECT DISTINCT name FROM results WHERE drifted AND seq >= 5"
    ).fetchall()
    assert {"f00", "@score"} <= {r[0] for r in drifted}
    before = m.store.con.execute("SELECT count(*) FROM results WHERE drifted AND seq < 5")
    assert before.fetchone() == (0,)
