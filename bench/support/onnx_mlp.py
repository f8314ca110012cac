"""The same MLP as an ONNX file: ``Gemm`` (transB) and ``Relu`` over a safetensors-mlp's
layers, input ``x`` [batch, features], output ``scores``; for timing the ONNX executor
against the safetensors-mlp one on the very same network (bench/predict.py)."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from sandbox.model_format import Mlp


def mlp_onnx(mlp: Mlp) -> bytes:
    """The ONNX bytes of ``mlp`` (opset 17, IR 8, the deployed dtype)."""
    np_dtype = np.float32 if mlp.dtype == "float32" else np.float64
    elem = TensorProto.FLOAT if mlp.dtype == "float32" else TensorProto.DOUBLE
    nodes, inits, last = [], [], "x"
    for i, (w, b) in enumerate(mlp.layers):
        inits += [numpy_helper.from_array(np.asarray(w, np_dtype), f"w{i}"),
                  numpy_helper.from_array(np.asarray(b, np_dtype), f"b{i}")]
        out = "scores" if i == len(mlp.layers) - 1 else f"h{i}"
        nodes.append(helper.make_node("Gemm", [last, f"w{i}", f"b{i}"], [out], transB=1))
        if out != "scores":
            nodes.append(helper.make_node("Relu", [out], [f"r{i}"]))
            out = f"r{i}"
        last = out
    width = int(mlp.layers[-1][0].shape[0])
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", elem, ["n", mlp.features])],
        [helper.make_tensor_value_info("scores", elem, ["n", width])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()
