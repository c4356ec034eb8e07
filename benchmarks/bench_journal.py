"""Cost of the prediction log's crash journal on the event loop, per answered batch.

``python -m benchmarks.bench_journal`` times ``LogWriter.append_many`` for batches of 1, 8 and
32 one-row requests of a 30-feature classifier, with the journal off and on (one framed
``os.write`` per batch), best of 3 runs of ~20,000 requests each, and prints what the journal
adds per batch and per request.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np

from gateway.logwriter import LogLayout, LogWriter, PredictionRecord
from gateway.schema import InputSpec, OutputSpec
from registry.model import Feature, OutputSchema

LAYOUT = LogLayout(
    InputSpec([Feature(f"f{i}") for i in range(30)], allows_nan=True),
    OutputSpec(OutputSchema("classification", [0, 1]), np.array([0, 1])),
)


def batch(n: int) -> tuple[list[PredictionRecord], np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(n)
    X = rng.random((n, 30), dtype=np.float32)
    outputs = {"predict": np.ones(n, dtype=np.int64), "predict_proba": rng.random((n, 2))}
    records = [
        PredictionRecord(
            ts_us=1_795_000_000_000_000,
            request_id=f"{i:024x}",
            model="rf",
            version=1,
            route="champion",
            layout=LAYOUT,
            X=X[i : i + 1],
            outputs={k: v[i : i + 1] for k, v in outputs.items()},
            latency_us=100,
            batch_rows=n,
            status=200,
        )  # fmt: skip
        for i in range(n)
    ]
    return records, X, outputs


def seconds_per_batch(n: int, *, journal: bool, requests: int = 20_000) -> float:
    root = tempfile.mkdtemp(prefix="mlgate-journal-bench-")
    writer = LogWriter(root, worker_id="bench", flush_rows=10**9, buffer_rows=10**9,
                       flush_interval_s=3600.0,
                       journal_dir=f"{root}/_journal" if journal else None)  # fmt: skip
    writer.start()
    records, X, outputs = batch(n)
    reps = max(1, requests // n)
    best = float("inf")
    try:
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(reps):
                writer.append_many(records, batch=(X, outputs))
            best = min(best, (time.perf_counter() - start) / reps)
            writer.flush()  # keep memory flat between runs
    finally:
        writer.close()
    return best


def main() -> None:
    for n in (1, 8, 32):
        off = seconds_per_batch(n, journal=False)
        on = seconds_per_batch(n, journal=True)
        added = (on - off) * 1e6
        print(f"batch of {n:2d} requests: journal off {off * 1e6:6.1f} us, on {on * 1e6:6.1f} us"
              f" -> adds {added:6.1f} us a batch, {added / n:5.1f} us a request")  # fmt: skip


if __name__ == "__main__":
    main()
