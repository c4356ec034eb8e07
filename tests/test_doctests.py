"""The examples in our modules' docstrings run (``make test`` collects this file).

Every module of the project's packages is imported and each docstring example in it is one
test. A module that gains examples is picked up without a change here.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "registry",
    "gateway",
    "monitor",
    "trainer",
    "kernels",
    "dashboard",
    "mlgate",
    "benchmarks",
)


def _modules() -> list[str]:
    """The modules whose source holds an example (only those are imported: some modules,
    such as the locust file, are meant for another process)."""
    names: list[str] = []
    for package in PACKAGES:
        if not (ROOT / package / "__init__.py").exists():
            continue
        names.append(package)
        for info in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
            names.append(info.name)
    return sorted(name for name in names if ">>> " in _source(name))


def _source(name: str) -> str:
    path = ROOT.joinpath(*name.split("."))
    file = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    return file.read_text(encoding="utf-8") if file.exists() else ""


def _examples() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests: list[doctest.DocTest] = []
    for name in _modules():
        module = importlib.import_module(name)
        for test in finder.find(module, name):
            # a docstring re-exported from another module is tested where it is defined
            if test.examples and test.name.startswith(name) and _defined_in(test, module):
                tests.append(test)
    return sorted(tests, key=lambda t: t.name)


def _defined_in(test: doctest.DocTest, module: object) -> bool:
    filename = getattr(module, "__file__", None)
    return test.filename is None or filename is None or Path(test.filename) == Path(filename)


EXAMPLES = _examples()


def test_there_are_examples_to_run() -> None:
    assert len(EXAMPLES) >= 30
    assert sum(len(t.examples) for t in EXAMPLES) >= 66


@pytest.mark.parametrize("test", EXAMPLES, ids=lambda t: t.name)
def test_docstring_example(test: doctest.DocTest) -> None:
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    output: list[str] = []
    result = runner.run(test, out=output.append, clear_globs=True)
    assert result.failed == 0, "".join(output)
