"""``mlgate rollout``: every command, bad input, and concurrent commands from real processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from mlgate.cli import app
from registry import Registry, logschema
from registry.gateways import report_gateway
from registry.model import Canary, Route, Shadow
from tests.helpers import fitted_churn

MLGATE = [str(Path(sys.executable).with_name("mlgate"))]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with three versions of 'churn', built once and copied per test."""
    root = tmp_path_factory.mktemp("template")
    reg = Registry(str(root / "registry"))
    for seed in range(3):
        reg.register("churn", fitted_churn(seed))
    return root


@pytest.fixture
def home(tmp_path: Path, template: Path) -> Path:
    shutil.copytree(template / "registry", tmp_path / "registry")
    return tmp_path


def _run(home: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["rollout", *args, "--home", str(home)])
    return result.exit_code, result.output


def _route(home: Path) -> tuple[int | None, Canary | None, list[Shadow], int]:
    r = Registry(str(home / "registry")).route("churn")
    return r.champion, r.canary, r.shadows, r.generation


def test_full_cycle(home: Path) -> None:
    code, out = _run(home, "start", "churn", "2", "--weight", "20")
    assert code == 0 and "canary v2 at 20%" in out
    assert _run(home, "weight", "churn", "50")[0] == 0
    assert _run(home, "shadow", "churn", "3", "--percent", "25")[0] == 0
    assert _route(home)[:3] == (1, Canary(2, 50.0), [Shadow(3, 25.0)])
    assert _run(home, "shadow", "churn", "--off")[0] == 0
    code, out = _run(home, "promote", "churn", "--format", "json")
    assert code == 0
    assert json.loads(out)["route"]["champion"] == 2
    assert json.loads(out)["route"]["previous_champion"] == 1
    code, out = _run(home, "rollback", "churn")
    assert code == 0 and "champion v1" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["start", "nope", "2"], "model 'nope' is not registered"),
        (["start", "churn", "9"], "version 9 does not exist"),
        (["start", "churn", "x"], "version must be an integer"),
        (["start", "churn", "2", "--weight", "101"], "weight must be a number from 0 to 100"),
        (["start", "churn", "2", "--steps", "50,10"], "strictly increasing"),
        (["start", "churn", "2", "--interval", "5"], "--interval needs --steps"),
        (["weight", "churn", "-5"], "weight must be a number from 0 to 100, got '-5'"),
        (["weight", "churn", "30"], "no canary to set a weight on"),
        (["shadow", "churn", "3", "--percent", "nan"], "shadow percent must be a number"),
        (["shadow", "churn"], "shadow needs a VERSION"),
        (["shadow", "churn", "--off"], "no shadow to turn off"),
        (["promote", "churn"], "cannot promote, there is no canary"),
        (["rollback", "churn"], "nothing to roll back"),
        (["promote", "Bad Name"], "Bad Name"),
    ],
)
def test_bad_input_one_line_nonzero_route_unchanged(
    home: Path, args: list[str], message: str
) -> None:
    before = _route(home)
    code, out = _run(home, *args)
    assert code != 0
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], out
    assert _route(home) == before


def test_failed_version_is_refused_and_status_says_why(home: Path) -> None:
    reg = Registry(str(home / "registry"))
    report_gateway(
        reg,
        "churn",
        "gw-1",
        generation=1,
        versions={1: "ready", 2: "failed"},
        errors={2: "warm-up failed: ValueError: X has 2 features"},
    )
    code, out = _run(home, "start", "churn", "2")
    assert code == 1 and "version 2 failed to load" in out and "X has 2 features" in out
    code, out = _run(home, "status", "churn", "--format", "json")
    assert code == 0
    status = json.loads(out)
    assert status["failed"] == {"2": "gw-1: warm-up failed: ValueError: X has 2 features"}
    assert [(g["gateway_id"], g["generation"]) for g in status["gateways"]] == [("gw-1", 1)]
    code, out = _run(home, "status", "churn")
    assert "gw-1" in out and "version 2 failed to load" in out


def test_status_of_a_model_without_logs(home: Path) -> None:
    _run(home, "start", "churn", "2", "--weight", "20")
    code, out = _run(home, "status", "churn", "--format", "json")
    assert code == 0
    status = json.loads(out)
    assert status["route"]["generation"] == 2
    assert [(r["route"], r["version"], r["requests"]) for r in status["stats"]["routes"]] == [
        ("champion", 1, 0),
        ("canary", 2, 0),
    ]
    code, out = _run(home, "status", "churn")
    assert code == 0 and "no live gateway" in out


def _spawn(home: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "MLGATE_HOME": str(home), "COLUMNS": "200"}
    return subprocess.Popen(
        [*MLGATE, "rollout", *args], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


@pytest.mark.slow
def test_concurrent_weight_commands_from_8_processes_lose_no_update(home: Path) -> None:
    assert _run(home, "start", "churn", "2", "--weight", "1")[0] == 0
    reg = Registry(str(home / "registry"))
    g0, n0 = reg.route("churn").generation, len(reg.events("churn"))
    weights = [10, 20, 30, 40, 50, 60, 70, 80]
    procs = [_spawn(home, "weight", "churn", str(w)) for w in weights]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    route = reg.route("churn")
    assert route.generation == g0 + 8
    events = reg.events("churn")[n0:]
    assert sorted(e.detail["weight"] for e in events) == weights
    assert sorted(e.generation for e in events) == list(range(g0 + 1, g0 + 9))
    # the last write wins, and it is the event with the highest generation
    last = max(events, key=lambda e: e.generation or 0)
    assert route.canary == Canary(2, float(last.detail["weight"]))


@pytest.mark.slow
def test_promote_racing_a_weight_change_ends_consistent(home: Path) -> None:
    assert _run(home, "start", "churn", "2", "--weight", "10")[0] == 0
    reg = Registry(str(home / "registry"))
    g0 = reg.route("churn").generation
    promote = _spawn(home, "promote", "churn")
    weight = _spawn(home, "weight", "churn", "60")
    promote.communicate(timeout=60)
    _, weight_err = weight.communicate(timeout=60)
    assert promote.returncode == 0
    route = reg.route("churn")
    # whichever won, the canary is promoted and nothing half-applied remains
    assert (route.champion, route.previous_champion, route.canary) == (2, 1, None)
    if weight.returncode == 0:  # the weight landed first, then the promote
        assert route.generation == g0 + 2
    else:  # the promote landed first: the weight found no canary and changed nothing
        assert "no canary" in weight_err
        assert route.generation == g0 + 1
    assert [e.generation for e in reg.events("churn")][-1] == route.generation


def _write_log(home: Path, rows: list[dict[str, object]]) -> None:
    now = datetime.now(UTC)
    day = now.date().isoformat()
    directory = Path(logschema.segment_dir(str(home / "logs"), logschema.PREDICTIONS, "churn", day))
    directory.mkdir(parents=True)
    frame = pl.DataFrame(
        [
            {"ts": now, "model": "churn", "in_x0": 0.5, "batch_rows": 1, "status": 200, **r}
            for r in rows
        ],
        schema_overrides={"ts": pl.Datetime("us", "UTC")},
    )
    frame.write_parquet(directory / "w1-000001.parquet")


def test_status_reads_the_prediction_log(home: Path) -> None:
    _run(home, "start", "churn", "2", "--weight", "20")
    _run(home, "shadow", "churn", "3")
    rows: list[dict[str, object]] = []
    for i in range(10):
        rows.append({"request_id": f"r{i}", "version": 1, "route": "champion",
                     "prediction": "1", "latency_us": 2000})  # fmt: skip
        rows.append({"request_id": f"r{i}", "version": 3, "route": "shadow",
                     "prediction": "1" if i < 9 else "0", "latency_us": 9000})  # fmt: skip
    _write_log(home, rows)
    code, out = _run(home, "status", "churn", "--format", "json")
    assert code == 0, out
    routes = {(r["route"], r["version"]): r for r in json.loads(out)["stats"]["routes"]}
    assert routes[("champion", 1)]["requests"] == 10
    assert routes[("canary", 2)]["requests"] == 0
    shadow = routes[("shadow", 3)]
    assert (shadow["compared"], shadow["agreement"], shadow["p50_ms"]) == (10, 0.9, 9.0)
    code, out = _run(home, "status", "churn")
    assert code == 0 and "90.0% of 10" in out


class _GatewayThatCannotLoad(threading.Thread):
    """Follows route.json the way a gateway's watcher does and reports through the registry's
    gateway-report contract; it cannot load ``broken`` (the report a real gateway writes)."""

    def __init__(self, reg: Registry, broken: int) -> None:
        super().__init__(daemon=True)
        self.reg, self.broken, self.stop = reg, broken, threading.Event()

    def report(self, route: Route) -> None:
        routed = route.routed_versions()
        errors = {self.broken: "warm-up failed: ValueError: bad"} if self.broken in routed else {}
        versions = {v: ("failed" if v in errors else "ready") for v in routed}
        report_gateway(self.reg, "churn", "gw-1", generation=route.generation,
                       versions=versions, errors=errors)  # fmt: skip

    def run(self) -> None:
        seen = -1
        while not self.stop.wait(0.02):
            route = self.reg.route("churn")
            if route.generation != seen:
                self.report(route)
                seen = route.generation


def test_start_is_withdrawn_when_a_live_gateway_cannot_load_the_version(home: Path) -> None:
    reg = Registry(str(home / "registry"))
    gateway = _GatewayThatCannotLoad(reg, broken=2)
    gateway.report(reg.route("churn"))
    gateway.start()
    try:
        code, out = _run(home, "start", "churn", "2", "--weight", "20")
    finally:
        gateway.stop.set()
        gateway.join()
    assert code == 1
    assert "version 2 failed to load on gateway gw-1: warm-up failed" in out
    assert "withdrawn" in out
    route = reg.route("churn")
    assert route.canary is None and route.champion == 1
    assert [e.detail.get("action") for e in reg.events("churn")][-2:] == ["start", "withdraw"]
    # status still says why, from the route's recent changes
    code, out = _run(home, "status", "churn")
    assert code == 0 and "action=withdraw" in out and "warm-up failed: ValueError: bad" in out


def test_start_warns_about_gateways_that_lag(home: Path) -> None:
    reg = Registry(str(home / "registry"))
    report_gateway(reg, "churn", "gw-slow", generation=1, versions={1: "ready"}, errors={})
    code, out = _run(home, "start", "churn", "2", "--gateway-timeout", "0.3")
    assert code == 0
    assert "warning: not yet on generation 2 after 0.3 s: gw-slow (generation 1)" in out


def test_plan_with_wait_steps_then_promotes(home: Path) -> None:
    code, out = _run(home, "start", "churn", "2", "--steps", "10,50", "--interval", "0.1", "--wait")
    assert code == 0, out
    assert "canary v2 at 10%" in out and "canary v2 at 50%" in out and "champion v2" in out
    reg = Registry(str(home / "registry"))
    assert [(e.kind, e.detail.get("action")) for e in reg.events("churn")][-3:] == [
        ("rollout", "start"),
        ("rollout", "step"),
        ("promote", "promote"),
    ]


def test_status_reports_a_corrupt_segment_and_goes_on(home: Path) -> None:
    _write_log(home, [{"request_id": f"r{i}", "version": 1, "route": "champion",
                       "prediction": "1", "latency_us": 2000} for i in range(5)])  # fmt: skip
    segment = next((home / "logs").rglob("w1-000001.parquet"))
    (segment.parent / "w2-000001.parquet").write_bytes(segment.read_bytes()[:100])
    code, out = _run(home, "status", "churn", "--format", "json")
    assert code == 0, out
    stats = json.loads(out)["stats"]
    assert stats["routes"][0]["requests"] == 5
    assert [Path(b["path"]).name for b in stats["bad_segments"]] == ["w2-000001.parquet"]
    code, out = _run(home, "status", "churn")
    assert code == 0, out
    assert "segment left out:" in out and "w2-000001.parquet" in out
