"""Small ONNX models built with ``onnx.helper``: the deployable ones and the hostile ones of
[JOB-EXPORT.4-7] (custom operator, external data, huge initializer, loop, sub-graph,
function, wrong schema). Shared by the checker's tests, its vectors and the sandbox tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from onnx import ModelProto, TensorProto, helper, numpy_helper

IN, OUT = 4, 3


def _model(nodes: list, inits: list, *, inputs: list | None = None,
           outputs: list | None = None, opsets: list | None = None, ir: int = 8,
           elem: int = TensorProto.FLOAT) -> ModelProto:
    graph = helper.make_graph(
        nodes, "g",
        inputs if inputs is not None else [helper.make_tensor_value_info("x", elem,
                                                                          ["n", IN])],
        outputs if outputs is not None else [helper.make_tensor_value_info("scores", elem,
                                                                           ["n", OUT])],
        inits)
    model = helper.make_model(graph, opset_imports=opsets or [helper.make_opsetid("", 17)],
                              producer_name="learningchain-tests")
    model.ir_version = ir
    return model


def weights(seed: int = 0, dtype: type = np.float32) -> list[TensorProto]:
    rng = np.random.default_rng(seed)
    return [numpy_helper.from_array(rng.normal(size=(8, IN)).astype(dtype), "w0"),
            numpy_helper.from_array(rng.normal(size=8).astype(dtype), "b0"),
            numpy_helper.from_array(rng.normal(size=(OUT, 8)).astype(dtype), "w1"),
            numpy_helper.from_array(rng.normal(size=OUT).astype(dtype), "b1")]


def mlp_nodes(out: str = "scores") -> list:
    return [helper.make_node("Gemm", ["x", "w0", "b0"], ["h"], transB=1),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("Gemm", ["r", "w1", "b1"], [out], transB=1)]


def mlp(seed: int = 0) -> ModelProto:
    """A deployable 4 → 8 → 3 ReLU MLP, float32, batch symbolic."""
    return _model(mlp_nodes(), weights(seed))


def mlp64() -> ModelProto:
    return _model(mlp_nodes(), weights(0, np.float64), elem=TensorProto.DOUBLE)


def with_label_first() -> ModelProto:
    """skl2onnx's shape: an int64 ``label`` output before the float ``probabilities``."""
    nodes = [*mlp_nodes("probabilities"),
             helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0)]
    outs = [helper.make_tensor_value_info("label", TensorProto.INT64, ["n"]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", OUT])]
    return _model(nodes, weights(), outputs=outs)


def custom_op() -> ModelProto:
    nodes = [*mlp_nodes("s0"), helper.make_node("Backdoor", ["s0"], ["scores"],
                                                domain="com.evil")]
    return _model(nodes, weights(), opsets=[helper.make_opsetid("", 17),
                                            helper.make_opsetid("com.evil", 1)])


def custom_op_unimported() -> ModelProto:
    nodes = [*mlp_nodes("s0"), helper.make_node("Backdoor", ["s0"], ["scores"],
                                                domain="com.evil")]
    return _model(nodes, weights())


def external_data() -> ModelProto:
    inits = weights()
    w0 = inits[0]
    w0.ClearField("raw_data")
    w0.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../../../etc/shadow"), ("offset", "0"),
                       ("length", "128")):
        entry = w0.external_data.add()
        entry.key, entry.value = key, value
    return _model(mlp_nodes(), inits)


def huge_initializer() -> ModelProto:
    """Declares 65536 × 65536 floats (16 GiB) and stores none: refused on its shape."""
    inits = weights()
    big = TensorProto(name="big", data_type=TensorProto.FLOAT, dims=[65536, 65536])
    nodes = [*mlp_nodes("s0"), helper.make_node("Add", ["s0", "big"], ["scores"])]
    return _model(nodes, [*inits, big])


def lying_initializer() -> ModelProto:
    inits = weights()
    inits[3] = TensorProto(name="b1", data_type=TensorProto.FLOAT, dims=[OUT],
                           float_data=[1.0, 2.0])  # 3 declared, 2 stored
    return _model(mlp_nodes(), inits)


def string_initializer() -> ModelProto:
    inits = [*weights(), helper.make_tensor("names", TensorProto.STRING, [1], [b"a"])]
    return _model(mlp_nodes(), inits)


def loop() -> ModelProto:
    """A Loop whose trip count and condition never stop it: refused, never run."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond"], ["cond_out"]),
         helper.make_node("Identity", ["v"], ["v_out"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v", TensorProto.FLOAT, ["n", OUT])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, ["n", OUT])])
    inits = [*weights(), helper.make_tensor("yes", TensorProto.BOOL, [], [True])]
    nodes = [*mlp_nodes("s0"), helper.make_node("Loop", ["", "yes", "s0"], ["scores"],
                                                body=body)]
    return _model(nodes, inits)


def subgraph_attribute() -> ModelProto:
    """An allowed operator carrying a graph attribute (smuggled control flow)."""
    model = mlp()
    inner = helper.make_graph([], "inner", [], [])
    model.graph.node[1].attribute.append(helper.make_attribute("then_branch", inner))
    return model


def local_function() -> ModelProto:
    fn = helper.make_function("lc.fn", "Twice", ["a"], ["b"],
                              [helper.make_node("Add", ["a", "a"], ["b"])],
                              [helper.make_opsetid("", 17)])
    nodes = [*mlp_nodes("s0"), helper.make_node("Twice", ["s0"], ["scores"], domain="lc.fn")]
    model = _model(nodes, weights(), opsets=[helper.make_opsetid("", 17),
                                             helper.make_opsetid("lc.fn", 1)])
    model.functions.append(fn)
    return model


def random_op() -> ModelProto:
    nodes = [*mlp_nodes("s0"), helper.make_node("RandomNormalLike", ["s0"], ["noise"]),
             helper.make_node("Add", ["s0", "noise"], ["scores"])]
    return _model(nodes, weights())


def constant_of_shape() -> ModelProto:
    """Allocates a tensor whose size is read from the input's values."""
    nodes = [helper.make_node("Cast", ["x"], ["xi"], to=TensorProto.INT64),
             helper.make_node("ReduceMax", ["xi"], ["m"], keepdims=0),
             helper.make_node("Reshape", ["m", "one"], ["m1"]),
             helper.make_node("ConstantOfShape", ["m1"], ["big"]),
             *mlp_nodes("s0"), helper.make_node("Add", ["s0", "big"], ["scores"])]
    one = helper.make_tensor("one", TensorProto.INT64, [1], [1])
    return _model(nodes, [*weights(), one])


def tile_bomb() -> ModelProto:
    """Allowed operators whose output is 10^10 × the input: passes the host check (the
    repeats are a constant a shape check cannot judge without running), contained in the
    sandbox: the runtime refuses the allocation, the model is unloadable [PRED-EXEC.6]."""
    reps = helper.make_tensor("reps", TensorProto.INT64, [2], [100_000, 100_000])
    nodes = [*mlp_nodes("s0"), helper.make_node("Tile", ["s0", "reps"], ["t"]),
             helper.make_node("ReduceSum", ["t", "axes"], ["s1"], keepdims=1),
             helper.make_node("Add", ["s0", "s1"], ["scores"])]
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    return _model(nodes, [*weights(), reps, axes])


def opset_too_new() -> ModelProto:
    return _model(mlp_nodes(), weights(), opsets=[helper.make_opsetid("", 23)])


def ir_too_new() -> ModelProto:
    return _model(mlp_nodes(), weights(), ir=12)


def fixed_batch() -> ModelProto:
    return _model(mlp_nodes(), weights(),
                  inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, IN])])


def wrong_features() -> ModelProto:
    return _model(mlp_nodes(), weights(),
                  inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 5])])


def two_inputs() -> ModelProto:
    extra = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", IN])
    return _model(mlp_nodes(), weights(), inputs=[
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", IN]), extra])


def wrong_width() -> ModelProto:
    return _model(mlp_nodes(), weights(), outputs=[
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["n", OUT + 1])])


def sequence_output() -> ModelProto:
    seq = helper.make_tensor_sequence_value_info("scores", TensorProto.FLOAT, ["n", OUT])
    return _model(mlp_nodes(), weights(), outputs=[seq])


CASES: dict[str, tuple[Callable[[], ModelProto], str]] = {
    "mlp_float32": (mlp, "ok:scores"),
    "skl2onnx_label_first": (with_label_first, "ok:probabilities"),
    "custom_op": (custom_op, "domain"),
    "custom_op_unimported": (custom_op_unimported, "domain"),
    "external_data": (external_data, "external"),
    "huge_initializer": (huge_initializer, "tensor"),
    "lying_initializer": (lying_initializer, "tensor"),
    "string_initializer": (string_initializer, "tensor"),
    "loop": (loop, "operator"),
    "subgraph_attribute": (subgraph_attribute, "graph"),
    "local_function": (local_function, "function"),
    "random_op": (random_op, "operator"),
    "constant_of_shape": (constant_of_shape, "operator"),
    "tile_bomb_passes_host_check": (tile_bomb, "ok:scores"),
    "opset_too_new": (opset_too_new, "version"),
    "ir_too_new": (ir_too_new, "version"),
    "fixed_batch": (fixed_batch, "io"),
    "wrong_features": (wrong_features, "io"),
    "two_inputs": (two_inputs, "io"),
    "wrong_width": (wrong_width, "io"),
    "sequence_output": (sequence_output, "io"),
}
"""name → (builder, verdict for the schema float32 × 4 → classes a, b, c)."""
