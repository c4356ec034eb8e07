"""Load-test rows (``traffic = 'loadtest'``) are never trained on, even when labelled."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from registry.logschema import LOADTEST_TRAFFIC
from tests.trainer.conftest import FEATURES, MODEL, rows, write_traffic
from trainer.data import LogReader, labelled_rows


def test_labelled_rows_leave_load_tests_out(tmp_path: Path) -> None:
    X = rows(400, seed=3)
    y = (X[:, 0] > 0).astype(int)
    tags = [LOADTEST_TRAFFIC if i % 3 == 0 else None for i in range(400)]
    write_traffic(tmp_path, X, y, traffic=tags)
    write_traffic(tmp_path, rows(100, seed=4), np.zeros(100, int), prefix="old")  # no column
    frame, _ = labelled_rows(LogReader(str(tmp_path)), MODEL, FEATURES, recent_rows=0)
    real = sum(t is None for t in tags)
    assert frame.height == real + 100
    kept = np.sort(frame[FEATURES[0]].to_numpy()[np.isin(frame[FEATURES[0]].to_numpy(), X[:, 0])])
    expected = np.sort(X[[t is None for t in tags], 0])
    np.testing.assert_array_equal(kept, expected)
