"""``mlgate loadtest``: a closed-loop load test of any Open Inference Protocol server, on locust.

Rows are drawn from the model's reference sample (what it was trained on), so the load looks
like production traffic and not like noise; a file of rows or random rows can be asked for
instead. Every request carries the header ``X-Mlgate-Traffic: loadtest``: mlgate's gateway
answers and counts such requests like any other (``/metrics``, the prediction log), and the
monitor and the trainer leave those rows out of drift statistics and training data.

The test runs in this process with locust's library interface (an ``Environment`` and a local
runner), prints a progress line every second, and ends with a summary: requests, req/s,
p50/p90/p99 latency and the errors by kind.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from registry.logschema import LOADTEST_TRAFFIC, TRAFFIC_HEADER

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


class LoadTestError(ValueError):
    """The load test cannot start: a bad option, an unreachable server, an unknown model."""


@dataclass(frozen=True)
class InputSpec:
    """One input tensor the server declares: name, datatype and feature count (1 = a column)."""

    name: str
    datatype: str
    width: int


@dataclass
class Summary:
    """What a load test measured; ``requests_per_s`` over the measured duration."""

    url: str
    model: str
    users: int
    duration_s: float
    requests: int
    failures: int
    requests_per_s: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    rows_from: str
    errors: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def input_specs(metadata: dict[str, Any]) -> list[InputSpec]:
    """The inputs an OIP model metadata document declares.

    >>> input_specs({"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]})
    [InputSpec(name='x', datatype='FP32', width=3)]
    """
    inputs = metadata.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise LoadTestError("the model's metadata declares no inputs")
    specs = []
    for item in inputs:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise LoadTestError(f"the model's metadata has an input without a name: {item!r}")
        shape = item.get("shape") or [-1, 1]
        width = shape[-1] if len(shape) >= 2 and isinstance(shape[-1], int) else 1
        if width < 1:
            raise LoadTestError(f"input {item['name']!r}: cannot size rows of shape {shape}")
        specs.append(InputSpec(item["name"], str(item.get("datatype", "FP32")), width))
    return specs


def bodies(specs: Sequence[InputSpec], rows: pl.DataFrame, batch_rows: int) -> list[str]:
    """OIP request bodies of ``batch_rows`` rows each, cycling through ``rows``.

    One 2-D input takes every column in order; one input per feature takes the column of its
    name (or, when the names differ, the column at its position).
    """
    if rows.height == 0:
        raise LoadTestError("no rows to send (the row source is empty)")
    total = sum(s.width for s in specs)
    if rows.width < total:
        raise LoadTestError(f"the rows have {rows.width} columns; the model takes {total} features")
    count = max(1, min(256, rows.height // batch_rows))
    out = []
    for i in range(count):
        take = np.arange(i * batch_rows, (i + 1) * batch_rows) % rows.height
        chunk = rows[take]
        tensors = []
        start = 0
        for spec in specs:
            if len(specs) > 1 and spec.width == 1 and spec.name in chunk.columns:
                cols = chunk.select(spec.name)
            else:
                cols = chunk.select(chunk.columns[start : start + spec.width])
            start += spec.width
            tensors.append(_tensor(spec, cols))
        out.append(json.dumps({"inputs": tensors}, separators=(",", ":")))
    return out


def _tensor(spec: InputSpec, cols: pl.DataFrame) -> dict[str, Any]:
    if spec.datatype == "BYTES":
        data: list[Any] = [None if v is None else str(v) for v in cols.to_numpy().ravel()]
    elif spec.datatype == "BOOL":
        data = [bool(v) for v in cols.to_numpy().ravel()]
    else:
        values = cols.cast(pl.Float64, strict=False).to_numpy().ravel()
        data = [None if not np.isfinite(v) else float(v) for v in values]
        if spec.datatype.startswith(("INT", "UINT")):
            data = [None if v is None else round(v) for v in data]
    return {
        "name": spec.name,
        "shape": [cols.height, spec.width],
        "datatype": spec.datatype,
        "data": data,
    }


def random_rows(specs: Sequence[InputSpec], n: int = 1024, seed: int = 0) -> pl.DataFrame:
    """Standard-normal rows, for a server whose reference sample we cannot read."""
    rng = np.random.default_rng(seed)
    width = sum(s.width for s in specs)
    return pl.DataFrame(rng.standard_normal((n, width)), schema=[f"f{i}" for i in range(width)])


def run(
    url: str,
    model: str,
    payloads: Sequence[str],
    *,
    users: int,
    duration_s: float,
    spawn_rate: float | None = None,
    headers: dict[str, str] | None = None,
    rows_from: str = "reference",
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> Summary:
    """Run ``users`` closed-loop users for ``duration_s`` and return the summary."""
    import gevent
    from locust import FastHttpUser, constant, task
    from locust.env import Environment

    path = f"/v2/models/{model}/infer"
    sent_headers = {"Content-Type": "application/json", TRAFFIC_HEADER: LOADTEST_TRAFFIC}
    sent_headers.update(headers or {})

    class OipUser(FastHttpUser):
        host = url
        wait_time = constant(0)

        def on_start(self) -> None:
            self.index = 0

        @task
        def infer(self) -> None:
            body = payloads[self.index % len(payloads)]
            self.index += 1
            self.client.post(path, data=body, headers=sent_headers, name=path)

    env = Environment(user_classes=[OipUser], host=url)
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=spawn_rate or max(users, 1))
    started = time.monotonic()
    try:
        while (elapsed := time.monotonic() - started) < duration_s:
            gevent.sleep(min(1.0, duration_s - elapsed))
            if on_progress is not None:
                total = env.stats.total
                on_progress({"elapsed_s": time.monotonic() - started,
                             "requests": total.num_requests, "failures": total.num_failures,
                             "requests_per_s": total.current_rps,
                             "p99_ms": _pct(total, 0.99)})  # fmt: skip
    finally:
        runner.quit()
    measured = max(time.monotonic() - started, 1e-9)
    total = env.stats.total
    errors = [{"error": str(e.error), "method": e.method, "occurrences": e.occurrences}
              for e in env.stats.errors.values()]  # fmt: skip
    return Summary(url=url, model=model, users=users, duration_s=round(measured, 3),
                   requests=total.num_requests, failures=total.num_failures,
                   requests_per_s=round(total.num_requests / measured, 1),
                   p50_ms=_pct(total, 0.5), p90_ms=_pct(total, 0.9), p99_ms=_pct(total, 0.99),
                   rows_from=rows_from, errors=errors)  # fmt: skip


def _pct(stats: Any, q: float) -> float | None:
    if not stats.num_requests:
        return None
    return float(stats.get_response_time_percentile(q))
