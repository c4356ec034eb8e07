"""``mlgate trainer retrain|history`` and ``models register --recipe``: output and errors."""

from __future__ import annotations

import json
from pathlib import Path

import skops.io as sio
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from mlgate.cli import app
from registry import Registry
from tests.trainer.conftest import MODEL, World, concept, drifted_traffic, rows

runner = CliRunner()


def _cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_retrain_json_then_history_carries_the_version(world: World, monkeypatch) -> None:
    monkeypatch.chdir(world.root)
    from mlgate.cli import common

    # pytest-xdist's workers run with COLUMNS=80, which rich reads when the console is made
    monkeypatch.setattr(common.console, "width", 200)
    (world.root / "mlgate.toml").write_text(
        "[trainer]\nrollout = false\nbootstrap_rounds = 100\nnice = 0\n"
    )
    drifted_traffic(world)
    where = ["--registry", world.registry.url, "--logs", str(world.logs)]
    code, out, err = _cli("trainer", "retrain", MODEL, "--dry-run", "--format", "json", *where)
    assert code == 0, err
    dry = json.loads(out)
    assert dry["status"] == "passed" and dry["version"] is None and dry["dry_run"] is True
    code, out, err = _cli("trainer", "retrain", MODEL, "--format", "json", *where)
    assert code == 0, err
    run = json.loads(out)
    assert run["status"] == "registered" and run["version"] == 2
    code, out, err = _cli("trainer", "history", MODEL, "--format", "json",
                          "--registry", world.registry.url)  # fmt: skip
    assert code == 0, err
    runs = json.loads(out)
    assert [r["version"] for r in runs] == [None, 2]
    assert all("version" in r for r in runs)
    code, out, err = _cli("trainer", "history", MODEL, "--registry", world.registry.url)
    assert code == 0 and "registered" in out and "passed" in out


def test_unknown_model_and_bad_settings_are_one_line_errors(world: World, monkeypatch) -> None:
    monkeypatch.chdir(world.root)
    code, _out, err = _cli("trainer", "retrain", "nope", "--registry", world.registry.url)
    assert code == 1 and "model 'nope' is not registered" in err
    (world.root / "mlgate.toml").write_text("[trainer]\nmargin = -1\n")
    code, _out, err = _cli("trainer", "retrain", MODEL, "--registry", world.registry.url)
    assert code == 1 and "'margin': expected >= 0" in err
    (world.root / "mlgate.toml").write_text("[trainer]\ncandidates = ['xgboost']\n")
    code, _out, err = _cli("trainer", "retrain", MODEL, "--registry", world.registry.url)
    assert code == 1 and "'candidates'" in err and "xgboost" in err


def test_register_records_the_recipe(tmp_path: Path) -> None:
    X = rows(200, seed=1)
    path = tmp_path / "m.skops"
    sio.dump(LogisticRegression().fit(X, concept(X, drifted=False)), path)
    reg = tmp_path / "reg"
    code, _out, err = _cli("models", "register", "m", str(path), "--recipe", "nope",
                           "--registry", str(reg))  # fmt: skip
    assert code == 1 and "--recipe: expected package.module:function" in err
    code, _out, err = _cli("models", "register", "m", str(path), "--recipe",
                           "tests.trainer.recipes:forest", "--registry", str(reg))  # fmt: skip
    assert code == 0, err
    assert Registry(str(reg)).get("m", 1).lineage.recipe == "tests.trainer.recipes:forest"
