"""Labelled production rows: the join of predictions and feedback, oldest first, against
the rows written (DuckDB over real Parquet segments)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from registry.logschema import FEEDBACK, segment_dir
from tests.trainer.conftest import FEATURES, MODEL, rows, write_traffic
from trainer.data import LogReader, labelled_rows

DAY = datetime(2026, 12, 1, tzinfo=UTC)


def _relabel(logs: Path, ids: list[str], labels: list[str], *, at: datetime) -> None:
    """A later feedback segment that labels ``ids`` again (the last label sent wins)."""
    folder = Path(segment_dir(str(logs), FEEDBACK, MODEL, DAY.strftime("%Y-%m-%d")))
    pl.DataFrame(
        {
            "ts": pl.Series([at] * len(ids), dtype=pl.Datetime("us", "UTC")),
            "request_id": ids,
            "model": [MODEL] * len(ids),
            "label": labels,
            "label_value": [float(v) for v in labels],
        }
    ).write_parquet(folder / "test-relabel.parquet")


@pytest.mark.parametrize("recent_rows", [0, 250])
def test_rows_are_joined_to_their_last_label_oldest_first(tmp_path: Path, recent_rows: int) -> None:
    # segments whose names list them out of time order ("a-" is the newest), so the rows
    # of a scan in file order are not in time order; within a segment rows go forward
    segments = [("b", 0, 300), ("a", 600, 200), ("c", 300, 300)]
    written: dict[str, tuple[datetime, np.ndarray, int]] = {}
    for prefix, start_s, n in segments:
        X = rows(n, seed=start_s)
        y = (X[:, 0] > 0).astype(int)
        start = DAY + timedelta(seconds=start_s)
        write_traffic(tmp_path, X, y, start=start, prefix=prefix)
        for i in range(n):
            written[f"{prefix}-{i}"] = (start + timedelta(seconds=i), X[i], int(y[i]))
    # predictions nobody labelled: left out
    write_traffic(tmp_path, rows(50, seed=9), [0] * 50, start=DAY, prefix="u")
    feedback = Path(segment_dir(str(tmp_path), FEEDBACK, MODEL, DAY.strftime("%Y-%m-%d")))
    (feedback / "test-u.parquet").unlink()
    relabelled = [f"c-{i}" for i in range(0, 300, 7)]
    _relabel(tmp_path, relabelled, ["7"] * len(relabelled), at=DAY + timedelta(days=1))

    frame, counts = labelled_rows(
        LogReader(str(tmp_path)), MODEL, FEATURES, recent_rows=recent_rows
    )
    assert counts == {"prediction_segments": 4, "feedback_segments": 4}
    ts = frame["ts"].to_list()
    assert ts == sorted(ts)
    expected = sorted(written.items(), key=lambda kv: kv[1][0])
    if recent_rows:
        expected = expected[-recent_rows:]
    assert frame.height == len(expected)
    assert ts == [t for _, (t, _, _) in expected]
    x = frame.select(FEATURES).to_numpy()
    np.testing.assert_array_equal(x, np.array([v for _, (_, v, _) in expected]))
    want = ["7" if rid in relabelled else str(y) for rid, (_, _, y) in expected]
    assert frame["label"].to_list() == want
    assert frame["label_value"].to_list() == [float(v) for v in want]
