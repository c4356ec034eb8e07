"""Tiny hand-built ONNX graphs: cheap to make and to load (no scikit-learn import)."""

from __future__ import annotations

from typing import Any

import numpy as np


def linear_regressor(n_features: int = 3, *, input_name: str = "X") -> Any:
    """``y = X @ w + b`` as an ONNX model with one ``float[n, d]`` input."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.arange(1, n_features + 1, dtype=np.float32)[:, None], "w")
    b = numpy_helper.from_array(np.array([0.5], dtype=np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", [input_name, "w"], ["xw"]),
         helper.make_node("Add", ["xw", "b"], ["variable"])],
        "linear",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])],
        initializer=[w, b],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
