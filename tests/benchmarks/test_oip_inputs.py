"""The locust file sends the inputs a server's metadata declares, whatever their names."""

from __future__ import annotations

import json

import pytest

from benchmarks.oip_inputs import make_bodies, specs_from_metadata


def test_bodies_follow_the_metadata_of_any_oip_server() -> None:
    # MLServer's scikit-learn runtime names its input after the model's settings, not input-0
    meta = {"name": "rf", "inputs": [{"name": "predict", "datatype": "FP32", "shape": [-1, 5]}]}
    body = json.loads(make_bodies(specs_from_metadata(meta), 3, 1, seed=0)[0])
    (tensor,) = body["inputs"]
    assert tensor["name"] == "predict" and tensor["shape"] == [3, 5]
    assert tensor["datatype"] == "FP32" and len(tensor["data"]) == 15


def test_one_tensor_per_feature_when_the_metadata_says_so() -> None:
    meta = {"inputs": [{"name": "age", "datatype": "FP64", "shape": [-1]},
                       {"name": "visits", "datatype": "INT64", "shape": [-1]}]}  # fmt: skip
    body = json.loads(make_bodies(specs_from_metadata(meta), 2, 1, seed=1)[0])
    assert [(t["name"], t["datatype"], t["shape"]) for t in body["inputs"]] == [
        ("age", "FP64", [2, 1]),
        ("visits", "INT64", [2, 1]),
    ]
    assert all(isinstance(v, int) for v in body["inputs"][1]["data"])


def test_without_metadata_the_environment_names_the_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLGATE_BENCH_INPUT", "x")
    monkeypatch.setenv("MLGATE_BENCH_FEATURES", "7")
    (spec,) = specs_from_metadata(None)
    assert (spec.name, spec.datatype, spec.width) == ("x", "FP32", 7)
