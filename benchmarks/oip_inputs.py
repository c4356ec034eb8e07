"""OIP request bodies for the inputs a server's model metadata declares (the locust file's
workload, kept free of locust so that it can be imported anywhere)."""

from __future__ import annotations

import os
from typing import Any

from mlgate.loadtest import InputSpec, LoadTestError, bodies, input_specs, random_rows


def specs_from_metadata(meta: dict[str, Any] | None) -> list[InputSpec]:
    """The model's declared inputs; without metadata, one FP32 ``[n, d]`` tensor from the
    environment (``MLGATE_BENCH_INPUT``, ``MLGATE_BENCH_FEATURES``)."""
    if meta is not None:
        try:
            return input_specs(meta)
        except LoadTestError as exc:
            raise SystemExit(f"model metadata: {exc}") from None
    name = os.environ.get("MLGATE_BENCH_INPUT", "input-0")
    return [InputSpec(name, "FP32", int(os.environ.get("MLGATE_BENCH_FEATURES") or 32))]


def make_bodies(specs: list[InputSpec], rows_per_body: int, count: int, seed: int) -> list[str]:
    return bodies(specs, random_rows(specs, rows_per_body * count, seed), rows_per_body)
