"""Triton's model configuration, as mlgate runs a loaded version (JSON form, both transports).

``perf_analyzer`` and Triton's clients read it before they send anything: ``max_batch_size``
(> 0: the first dimension of every tensor is the batch, left out of ``dims``), the inputs and
outputs in Triton's ``TYPE_*`` names, and the dynamic batching mlgate applies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.codecs.oip import tensor_metadata

if TYPE_CHECKING:
    from gateway.models import LoadedVersion
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
