"""The generated reference in docs/ matches the code, and every setting is described."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlgate import reference

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(reference.GENERATED))
def test_generated_document_is_current(name: str) -> None:
    written = (ROOT / "docs" / name).read_text()
    assert written == reference.GENERATED[name]() + "\n", (
        f"docs/{name} is stale: run `make docs` (python -m mlgate.reference)"
    )


@pytest.mark.parametrize("section", reference.sections(), ids=lambda s: s.table)
def test_every_setting_is_described(section: reference.Section) -> None:
    missing = [s.name for s in reference.settings_of(section.cls) if not s.description]
    assert missing == [], f"[{section.table}] settings without a comment: {missing}"


def test_docs_never_point_outside_the_project() -> None:
    for path in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        assert "../shared" not in path.read_text(), path


def test_docs_links_resolve() -> None:
    for path in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", path.read_text()):
            assert (path.parent / target).exists(), f"{path.name}: broken link {target}"


def test_every_environment_variable_is_documented() -> None:
    found: set[str] = set()
    for package in ("registry", "gateway", "monitor", "trainer", "mlgate", "kernels", "dashboard"):
        for path in (ROOT / package).rglob("*.py"):
            found |= set(re.findall(r"\bMLGATE_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    from monitor.config import MonitorConfig

    per_setting = {f"MLGATE_MONITOR_{name.upper()}" for name in MonitorConfig.__dataclass_fields__}
    missing = sorted(found - set(reference.ENVIRONMENT) - per_setting)
    assert missing == [], f"add to mlgate.reference.ENVIRONMENT: {missing}"


# a metric family is created with its name as the first argument
METRIC_DEFINITION = re.compile(
    r"(?:Counter|Gauge|Histogram|MetricFamily|counter|gauge)\(\s*[\"'](mlgate_[a-z0-9_]+)[\"']"
)


def test_every_metric_is_documented() -> None:
    documented = (ROOT / "docs" / "metrics.md").read_text()
    found: set[str] = set()
    for package in ("registry", "gateway", "monitor", "trainer", "mlgate", "kernels", "dashboard"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            found |= set(METRIC_DEFINITION.findall(text))
    assert len(found) > 20
    missing = sorted(name for name in found if f"`{name}`" not in documented)
    assert missing == [], f"add to docs/metrics.md: {missing}"
