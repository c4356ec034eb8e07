"""The examples in the protocol modules' docstrings run."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from gateway.codecs import mlflow, oip, triton
from gateway.grpc import codec, service, status


@pytest.mark.parametrize(
    "module", [codec, mlflow, oip, service, status, triton], ids=lambda m: m.__name__
)
def test_docstring_examples(module: ModuleType) -> None:
    failures, tried = doctest.testmod(module)
    assert tried > 0 and failures == 0
