"""The drift figures of windows: the store's statistics query, finished in numpy."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from monitor.stats.drift import NUMERIC_OUT, finish

if TYPE_CHECKING:
    from monitor.store import MonitorStore


def window_statistics(
    store: MonitorStore, window_ids: list[int], *, noise_z: float = 4.0
) -> dict[str, np.ndarray]:
    """Columns (one entry per window and column profile) of every figure of
    ``monitor.stats.drift``."""
    table = store.window_statistics(window_ids)
    out: dict[str, np.ndarray] = {
        "window_id": table.column("window_id").to_numpy().astype(np.int64),
        "name": np.asarray(table.column("name").to_pylist(), dtype=object),
        "kind": np.asarray(table.column("kind").to_pylist(), dtype=object),
        "role": np.asarray(table.column("role").to_pylist(), dtype=object),
    }
    for key in NUMERIC_OUT:
        out[key] = table.column(key).cast(pa.float64()).to_numpy(zero_copy_only=False)
    finish(out, noise_z)
    return out
