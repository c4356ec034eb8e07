"""The examples in the promotion package's docstrings run."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from trainer.promotion import checks, evidence, plan, stats


@pytest.mark.parametrize("module", [stats, checks, plan, evidence], ids=lambda m: m.__name__)
def test_docstring_examples(module: ModuleType) -> None:
    failures, tried = doctest.testmod(module)
    assert tried > 0 and failures == 0
