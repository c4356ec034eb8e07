"""The examples in the harness's docstrings run."""

from __future__ import annotations

import doctest

import pytest

from benchmarks import pyspy, workload, wrk_load


@pytest.mark.parametrize("module", [pyspy, workload, wrk_load], ids=lambda m: m.__name__)
def test_docstring_examples(module: object) -> None:
    failures, tried = doctest.testmod(module)  # type: ignore[arg-type]
    assert tried > 0 and failures == 0
