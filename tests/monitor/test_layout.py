"""The monitor's folders are its pipeline: stages import each other one way only.

Parsed with ``ast`` (nothing is imported): every ``import`` of a ``monitor`` module that runs
at run time (``if TYPE_CHECKING:`` blocks are left out, imports inside functions are not),
with importing ``monitor.a.b`` counted as importing ``monitor.a`` too (its ``__init__`` runs).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "monitor"
STAGES = ("stats", "detectors", "store", "ingest", "compute", "alerts", "report")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, skipping the bodies of ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _imports(name: str) -> set[str]:
    """The monitor modules ``name`` imports at run time (with their packages)."""
    tree = ast.parse(MODULES[name].read_text())
    found: set[str] = set()
    for node in _runtime_nodes(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [node.module]
            targets += [f"{node.module}.{a.name}" for a in node.names]
        for target in targets:
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                candidate = ".".join(parts[:i])
                # the root package is the public facade, imported before any module of it,
                # and a module's own packages are already being imported when it runs
                if (
                    candidate in MODULES
                    and candidate != "monitor"
                    and not (name == candidate or name.startswith(candidate + "."))
                ):
                    found.add(candidate)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (as a path that comes back to its start), or None."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def _stage(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None


GRAPH = {name: _imports(name) for name in MODULES}


def test_every_stage_is_a_folder() -> None:
    for stage in STAGES:
        assert (PACKAGE / stage / "__init__.py").is_file(), stage
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    # the pipeline's own modules (warm: compiles every stage's kernels at install); everything
    # else lives in a stage
    assert loose == [
        "__init__.py", "clock.py", "config.py", "metrics.py", "monitor.py", "service.py", "warm.py"
    ], loose  # fmt: skip


def test_no_module_import_circle() -> None:
    assert _cycle(GRAPH) is None, " -> ".join(_cycle(GRAPH) or [])


def test_stages_depend_on_each_other_one_way() -> None:
    stages: dict[str, set[str]] = {s: set() for s in STAGES}
    for name, targets in GRAPH.items():
        here = _stage(name)
        if here is None:
            continue
        stages[here] |= {t for t in map(_stage, targets) if t is not None and t != here}
    assert _cycle(stages) is None, " -> ".join(_cycle(stages) or [])
    # statistics and detectors are pure: no DuckDB, no store, no files
    for pure in ("stats", "detectors"):
        assert stages[pure] <= {"stats", "detectors"}, (pure, stages[pure])


def test_pure_stages_never_touch_duckdb() -> None:
    for name, path in MODULES.items():
        if _stage(name) in ("stats", "detectors"):
            assert "duckdb" not in path.read_text(), name


def test_modules_never_import_the_facade() -> None:
    """``monitor/__init__.py`` re-exports the public surface; inside, modules import the
    module that defines a name (else the facade's imports would run mid-import)."""
    for name, path in MODULES.items():
        if name == "monitor":
            continue
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "monitor":
                names = [a.name for a in node.names]
                assert all(f"monitor.{n}" in MODULES for n in names), (name, names)


SQL_CALLS = {"execute", "executemany", "sql", "register", "unregister"}


def test_only_the_store_runs_sql() -> None:
    """``MonitorStore`` owns every table read and write: no other stage runs a statement
    (the ingest stage's scratch in-memory DuckDB only evaluates expressions over Arrow)."""
    outside = []
    for name, path in MODULES.items():
        if _stage(name) == "store":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in SQL_CALLS
            ):
                outside.append(f"{name}:{node.lineno} .{node.func.attr}()")
    assert outside == []


def test_segments_are_written_in_one_place() -> None:
    statements = [
        f"{name}"
        for name, path in MODULES.items()
        for _ in range(path.read_text().count("INTO segments"))
    ]
    assert statements == ["monitor.store.segments"]


def test_no_private_name_crosses_a_module() -> None:
    crossings = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("monitor"):
                crossings += [
                    f"{name} imports {node.module}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
    assert crossings == []
