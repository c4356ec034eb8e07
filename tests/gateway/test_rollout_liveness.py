"""GatewayReporter: what a gateway writes for ``rollout status`` and ``rollout start``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from gateway.liveness import GatewayReporter
from registry import Registry
from registry.gateways import failed_versions, gateway_states
from registry.model import Canary, Route


@dataclass
class State:
    name: str
    route: Route | None
    versions: dict[int, Any] = field(default_factory=dict)
    failures: dict[int, str] = field(default_factory=dict)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    X = np.random.default_rng(0).normal(size=(32, 2)).astype(np.float32)
    registry = Registry(str(tmp_path / "registry"))
    registry.register("churn", LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)))
    return registry


def test_writes_on_change_and_on_heartbeat_only(reg: Registry) -> None:
    clock = Clock()
    reporter = GatewayReporter(reg, "gw-1", heartbeat_s=5.0, clock=clock)
    state = State("churn", Route(champion=1, generation=1), versions={1: object()})
    assert reporter.observe(state) is True
    assert reporter.observe(state) is False  # nothing new, heartbeat not due
    clock.now = 5.0
    assert reporter.observe(state) is True  # heartbeat
    failed = State(
        "churn",
        Route(champion=1, canary=Canary(2, 10), generation=2),
        versions={1: object()},
        failures={2: "UnsupportedModel: no"},
    )
    assert reporter.observe(failed) is True  # changed: written at once
    assert reporter.reports_written == 3
    (gw,) = gateway_states(reg, "churn")
    assert (gw.gateway_id, gw.generation, gw.versions) == ("gw-1", 2, {1: "ready", 2: "failed"})
    assert failed_versions(reg, "churn") == {2: "gw-1: UnsupportedModel: no"}
    assert reporter.observe(State("churn", None)) is False


def test_a_registry_that_cannot_be_written_is_counted_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    reporter = GatewayReporter(Registry(str(blocker / "registry")), "gw-1")
    assert reporter.report("churn", generation=1, versions={}, errors={}) is False
    assert reporter.report_errors == 1
