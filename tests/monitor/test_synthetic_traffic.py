"""Load-test rows (``traffic = 'loadtest'``, from ``X-Mlgate-Traffic``) stay out of the
monitor's windows and statistics, in mixed segments, whole synthetic segments and segments of
real rows that carry the column; older segments without the column count as before."""

from __future__ import annotations

from typing import Any

import numpy as np

from registry import Registry
from registry.logschema import LOADTEST_TRAFFIC
from tests.monitor.conftest import T0_US, Logs, fit_classifier


def test_load_test_rows_are_not_counted_and_cause_no_drift(
    registry: Registry, logs: Logs, make_monitor: Any
) -> None:
    est, ref = fit_classifier(d=4, rows=4000, seed=4)
    mv = registry.register("shop", est, reference=ref)
    rng = np.random.default_rng(11)
    # real traffic, with the column (all null) and without it (an older gateway)
    logs.predictions(mv, rng.normal(size=(1000, 4)), estimator=est, traffic=[None] * 1000)
    logs.predictions(mv, rng.normal(size=(1000, 4)), estimator=est, start_us=T0_US + 10**6)
    # a mixed segment: every other row is a load test far from the reference
    mixed = rng.normal(size=(2000, 4))
    synthetic = np.arange(2000) % 2 == 1
    mixed[synthetic] += 6.0
    tags = [LOADTEST_TRAFFIC if s else None for s in synthetic]
    logs.predictions(mv, mixed, estimator=est, start_us=T0_US + 2 * 10**6, traffic=tags)
    # a whole load-test segment
    logs.predictions(mv, rng.normal(size=(1500, 4)) + 6.0, estimator=est,
                     start_us=T0_US + 5 * 10**6, traffic=[LOADTEST_TRAFFIC] * 1500)  # fmt: skip
    monitor = make_monitor()
    result = monitor.run_once()
    assert result.rows == 3000  # 1000 + 1000 + the 1000 real rows of the mixed segment
    flagged = monitor.store.con.execute(
        "SELECT count(*) FROM results WHERE drifted OR psi >= 0.2"
    ).fetchone()
    assert flagged == (0,)


def test_a_drift_in_real_rows_is_still_found_beside_load_tests(
    registry: Registry, logs: Logs, make_monitor: Any
) -> None:
    est, ref = fit_classifier(d=4, rows=4000, seed=4)
    mv = registry.register("shop", est, reference=ref)
    rng = np.random.default_rng(12)
    x = rng.normal(size=(4000, 4))
    x[2000:, 0] += 2.0  # real drift on f00 in the second half
    tags = [LOADTEST_TRAFFIC if i % 4 == 0 else None for i in range(4000)]
    x[np.array(tags) == LOADTEST_TRAFFIC] = 0.0  # the load test sends one row again and again
    logs.predictions(mv, x, estimator=est, traffic=tags)
    monitor = make_monitor()
    monitor.run_once()
    drifted = monitor.store.con.execute(
        "SELECT DISTINCT name FROM results WHERE role = 'feature' AND drifted"
    ).fetchall()
    assert drifted == [("f00",)]
