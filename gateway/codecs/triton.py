"""Triton's extensions as mlgate answers them (JSON form, shared by HTTP and gRPC): model
configuration, statistics and the repository index.

``perf_analyzer`` and Triton's clients read the configuration before they send anything:
``max_batch_size`` (> 0: the first dimension of every tensor is the batch, left out of
``dims``), the inputs and outputs in Triton's ``TYPE_*`` names, and the dynamic batching mlgate
applies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.codecs.oip import tensor_metadata

if TYPE_CHECKING:
    from gateway.metrics import GatewayMetrics
    from gateway.models import LoadedVersion, ModelState
    from gateway.settings import GatewaySettings


def triton_type(datatype: str) -> str:
    """Triton's config name of an OIP datatype.

    >>> triton_type("FP32"), triton_type("BYTES")
    ('TYPE_FP32', 'TYPE_STRING')
    """
    return "TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}"


def _tensor(name: str, datatype: str, shape: list[int]) -> dict[str, Any]:
    dims = shape[1:]  # the batch dimension is implied by max_batch_size > 0
    tensor: dict[str, Any] = {"name": name, "data_type": triton_type(datatype)}
    if dims:
        tensor["dims"] = dims
    else:  # one value per row: Triton writes [1], reshaped to nothing
        tensor["dims"] = [1]
        tensor["reshape"] = {"shape": []}
    return tensor


def model_config(loaded: LoadedVersion, settings: GatewaySettings) -> dict[str, Any]:
    """The Triton model configuration of ``loaded``.

    ``max_batch_size`` is ``max_request_rows`` (the most rows one request may carry); the
    dynamic batcher's preferred size is ``max_batch_rows`` and its queue delay
    ``max_delay_us``.
    """
    inputs = [_tensor(t["name"], t["datatype"], t["shape"]) for t in tensor_metadata(loaded.inputs)]
    spec = loaded.outputs
    outputs = [_tensor(name, spec.datatypes[name], spec.shapes[name]) for name in spec.names]
    return {
        "name": loaded.model,
        "platform": f"mlgate-{loaded.backend}",
        "backend": loaded.backend,
        "max_batch_size": settings.max_request_rows,
        "input": inputs,
        "output": outputs,
        "dynamic_batching": {
            "preferred_batch_size": [settings.max_batch_rows],
            "max_queue_delay_microseconds": settings.max_delay_us,
        },
        "parameters": {
            "version": {"string_value": str(loaded.version)},
            "flavor": {"string_value": loaded.manifest.flavor},
            "task": {"string_value": spec.task},
        },
    }


def _duration(count: int, ns: int) -> dict[str, int]:
    return {"count": count, "ns": ns}


def version_statistics(metrics: GatewayMetrics, model: str, version: int) -> dict[str, Any]:
    """Triton's ``ModelStatistics`` of one version, from this worker's own counters."""
    s = metrics.version_stats(model, version)
    zero = _duration(0, 0)
    return {
        "name": model,
        "version": str(version),
        "last_inference": s.last_inference_ms,
        "inference_count": s.rows,
        "execution_count": s.batches,
        "inference_stats": {
            "success": _duration(s.success_count, s.success_ns),
            "fail": _duration(s.fail_count, s.fail_ns),
            "queue": _duration(s.success_count, s.queue_ns),
            # perf_analyzer needs the three compute counts equal; mlgate times the batch as a
            # whole, so its input and output conversion are inside compute_infer
            "compute_input": _duration(s.success_count, 0),
            "compute_infer": _duration(s.success_count, s.compute_ns),
            "compute_output": _duration(s.success_count, 0),
            "cache_hit": zero,
            "cache_miss": zero,
        },
        "batch_stats": [],
    }


def model_statistics(
    metrics: GatewayMetrics, states: list[ModelState], version: int | None = None
) -> dict[str, Any]:
    """``{"model_stats": [...]}`` for every loaded version of ``states`` (or one version)."""
    stats = [
        version_statistics(metrics, state.name, v)
        for state in states
        for v in sorted(state.versions)
        if version is None or v == version
    ]
    return {"model_stats": stats}


def repository_index(states: dict[str, ModelState], *, ready_only: bool) -> list[dict[str, str]]:
    """Triton's repository index: one entry per model and loaded or failed version, with its
    state (``READY``, ``UNAVAILABLE``) and, for a failed one, the reason."""
    index = []
    for name in sorted(states):
        state = states[name]
        for version in sorted(set(state.versions) | set(state.failures)):
            ready = version in state.versions
            if ready_only and not ready:
                continue
            entry = {"name": name, "version": str(version), "state": "READY" if ready else
                     "UNAVAILABLE"}  # fmt: skip
            if not ready:
                entry["reason"] = state.failures[version]
            index.append(entry)
    return index
