"""Fitted models (once per session) and their runtimes per backend (built once, on demand)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from threadpoolctl import threadpool_limits

from gateway.runtimes import UnsupportedModel, compile_model
from tests.gateway.runtimes.zoo import CASES, Case, fit

# "numba-saved": the numba runtime saved as arrays and loaded back (gateway.runtimes.numba.saved),
# as a gateway serves a version from its runtime cache
BACKENDS = ("numba", "numba-saved", "sklearn", "onnx")
# skl2onnx 1.20 cannot convert these faithfully; export_onnx refuses them
ONNX_UNSUPPORTED = {"hgb_categorical", "hgb_poisson"}
# small enough that hypothesis batches run both the serial and the parallel kernels
PARALLEL_ROWS = 24


class Zoo:
    def __init__(self) -> None:
        self._models: dict[str, Any] = {}
        self._runtimes: dict[tuple[str, str], Any] = {}

    def model(self, case: Case) -> Any:
        if case.name not in self._models:
            self._models[case.name] = fit(case)
        return self._models[case.name]

    def runtime(self, backend: str, case: Case) -> Any:
        key = (backend, case.name)
        if key not in self._runtimes:
            if backend == "onnx" and case.name in ONNX_UNSUPPORTED:
                with pytest.raises(UnsupportedModel):
                    compile_model(self.model(case), "onnx")
                pytest.skip(f"{case.name}: onnx export refused (UnsupportedModel, checked)")
            if backend == "numba-saved":
                from gateway.runtimes.numba.saved import dump_saved, load_saved

                saved = dump_saved(self.runtime("numba", case))
                self._runtimes[key] = load_saved(saved, parallel_rows=PARALLEL_ROWS)
                return self._runtimes[key]
            options = {"parallel_rows": PARALLEL_ROWS} if backend == "numba" else {}
            self._runtimes[key] = compile_model(self.model(case), backend, **options)
        return self._runtimes[key]


@pytest.fixture(scope="session")
def zoo() -> Iterator[Zoo]:
    # scikit-learn's OpenMP pools (HistGradientBoosting) spin badly on a shared 2-core box
    with threadpool_limits(limits=1, user_api="openmp"):
        yield Zoo()


def case_params() -> list[Any]:
    return [pytest.param(c, id=c.name) for c in CASES]
