"""Operators whose result C++ leaves undefined for some inputs are refused where those inputs
can reach them [PRED-ONNX.4] [PRED-ONNX.5]: a float cast to an integer (x86-64 answers
INT_MIN out of range, ARM saturates), an integer division by anything but a safe constant
(x86-64 traps), integer operators computed in floating point and converted back; what real
exporters write (torch.onnx's size arithmetic, skl2onnx's casts) still passes. The
allow-list written in predict.md is the code's."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from onnx import ModelProto, TensorProto, helper

from chain.predict.model import InputSchema, OutputSchema
from sandbox.model_format import ModelFormatError
from sandbox.onnx_check import check_onnx
from sandbox.onnx_ops import CONDITIONS, DEFAULT_OPS, ML_OPS
from tests.predict import onnx_models as om

SCHEMA = InputSchema("float32", om.IN)
LABELS = OutputSchema("classes", ("a", "b", "c"))
PREDICT_MD = Path(__file__).resolve().parents[2] / "protocol_spec" / "predict.md"


def verdict(model: ModelProto) -> str:
    try:
        return "ok:" + check_onnx(model.SerializeToString(), SCHEMA, LABELS).scores_name
    except ModelFormatError as e:
        return e.rule


def refusal(model: ModelProto) -> ModelFormatError:
    with pytest.raises(ModelFormatError) as e:
        check_onnx(model.SerializeToString(), SCHEMA, LABELS)
    return e.value


def through(nodes: list, extra_inits: list | None = None) -> ModelProto:
    """The MLP, then ``nodes`` from ``s0`` to ``t`` (any type), then ``scores = s0 +
    Cast(t, float)`` so the graph stays well typed."""
    tail = [helper.make_node("Cast", ["t"], ["tf"], to=TensorProto.FLOAT),
            helper.make_node("Add", ["s0", "tf"], ["scores"])]
    return om._model([*om.mlp_nodes("s0"), *nodes, *tail], [*om.weights(),
                                                            *(extra_inits or [])])


def int_tensor(name: str, values: list[int], dtype: int = TensorProto.INT64) -> TensorProto:
    return helper.make_tensor(name, dtype, [len(values)], values)


def cast_float_to_int32() -> ModelProto:
    """The issue's model: scores cast to int32 and back; out of range, undefined in C++."""
    return through([helper.make_node("Cast", ["s0"], ["t"], to=TensorProto.INT32)])


def test_pred_onnx_5_cast_of_a_float_to_int32_is_refused() -> None:
    """[PRED-ONNX.5] ``Cast`` float → int32 (and to int64, uint8, and ``CastLike`` to an
    integer tensor's type) is refused as ``operator``, naming the node, both types and the
    rule; today's check accepted it."""
    error = refusal(cast_float_to_int32())
    assert error.rule == "operator" and "[PRED-ONNX.5]" in str(error)
    assert "from element type 1 to integer type 6" in str(error)
    for to in (TensorProto.INT64, TensorProto.UINT8, TensorProto.INT8):
        model = through([helper.make_node("Cast", ["s0"], ["t"], to=to)])
        assert verdict(model) == "operator", to
    like = through([helper.make_node("CastLike", ["s0", "k"], ["t"])],
                   [int_tensor("k", [1], TensorProto.INT32)])
    assert verdict(like) == "operator"
    to_string = through([helper.make_node("Cast", ["s0"], ["t"], to=TensorProto.STRING)])
    assert verdict(to_string) == "operator"


def test_pred_onnx_5_defined_casts_pass() -> None:
    """[PRED-ONNX.5] Casts with a defined result stay: float → double, float16, bool;
    int64 (ArgMax) → float; int64 → int32 (wraps alike everywhere); bool → int."""
    for nodes in (
            [helper.make_node("Cast", ["s0"], ["t"], to=TensorProto.DOUBLE)],
            [helper.make_node("Cast", ["s0"], ["t"], to=TensorProto.FLOAT16)],
            [helper.make_node("Cast", ["s0"], ["t"], to=TensorProto.BOOL)],
            [helper.make_node("ArgMax", ["s0"], ["t"], axis=1, keepdims=1)],
            [helper.make_node("ArgMax", ["s0"], ["a"], axis=1, keepdims=1),
             helper.make_node("Cast", ["a"], ["t"], to=TensorProto.INT32)],
            [helper.make_node("Greater", ["s0", "s0"], ["g"]),
             helper.make_node("Cast", ["g"], ["t"], to=TensorProto.INT64)]):
        assert verdict(through(nodes)) == "ok:scores", [n.op_type for n in nodes]


def size_arithmetic(divisor: TensorProto | None, op: str = "Div") -> ModelProto:
    """torch.onnx's ``x.size(1) // d``: Shape → Gather → Div by a constant, or by another
    size when ``divisor`` is None."""
    nodes = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Gather", ["shape", "one"], ["width"], axis=0)]
    if divisor is None:
        nodes.append(helper.make_node("Gather", ["shape", "zero"], ["d"], axis=0))
    else:
        nodes.append(helper.make_node("Constant", [], ["d"], value=divisor))
    nodes.append(helper.make_node(op, ["width", "d"], ["t"]))
    return through(nodes, [helper.make_tensor("one", TensorProto.INT64, [], [1]),
                           helper.make_tensor("zero", TensorProto.INT64, [], [0])])


@pytest.mark.parametrize("op", ["Div", "Mod"])
def test_pred_onnx_5_integer_division_needs_a_constant_divisor_without_0_or_minus_1(
        op: str) -> None:
    """[PRED-ONNX.5] An integer ``Div``/``Mod`` passes only by a constant with no 0 and no
    -1 (x / 0 and INT_MIN / -1 trap on x86-64: the server dies, measured for Div); by a
    size read from the input (the batch may be anything) it is refused; a float division
    is defined whatever the divisor."""
    assert verdict(size_arithmetic(helper.make_tensor("two", TensorProto.INT64, [], [2]),
                                   op)) == "ok:scores"
    for bad in ([0], [-1], [3, 0]):
        divisor = helper.make_tensor("d", TensorProto.INT64, [len(bad)], bad)
        assert verdict(size_arithmetic(divisor, op)) == "operator", bad
    error = refusal(size_arithmetic(None, op))
    assert error.rule == "operator" and f"integer {op}" in str(error)
    assert verdict(through([helper.make_node(op, ["s0", "s0"], ["t"], fmod=1)] if op == "Mod"
                           else [helper.make_node(op, ["s0", "s0"], ["t"])])) == "ok:scores"


@pytest.mark.parametrize("op", ["Pow", "ReduceMean", "ReduceL2", "ReduceLogSum",
                                "ReduceLogSumExp", "Shrink"])
def test_pred_onnx_5_integer_ops_computed_in_floating_point_are_refused(op: str) -> None:
    """[PRED-ONNX.5] On an integer input (ArgMax's int64) these convert a floating result
    back to the integer type, or divide by a size: refused; on floats they pass."""
    args = ["a", "a"] if op == "Pow" else ["a"]
    on_ints = [helper.make_node("ArgMax", ["s0"], ["a"], axis=1, keepdims=1),
               helper.make_node(op, args, ["t"])]
    assert verdict(through(on_ints)) == "operator"
    on_floats = [helper.make_node("Identity", ["s0"], ["a"]), helper.make_node(op, args, ["t"])]
    assert verdict(through(on_floats)) == "ok:scores"


def test_pred_onnx_5_one_hot_encoder_of_floats_and_training_dropout_are_refused() -> None:
    """[PRED-ONNX.5] ``OneHotEncoder`` converts each float to int64 (undefined out of range):
    refused on a float input; a ``Dropout`` given ``training_mode`` draws a random mask:
    refused; a ``Dropout`` without it (the identity) passes."""
    ml = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    onehot = om._model([*om.mlp_nodes("s0"),
                        helper.make_node("OneHotEncoder", ["s0"], ["t"], domain="ai.onnx.ml",
                                         cats_int64s=[0, 1]),
                        helper.make_node("ReduceSum", ["t"], ["r"], keepdims=0),
                        helper.make_node("Add", ["s0", "r"], ["scores"])],
                       om.weights(), opsets=ml)
    error = refusal(onehot)
    assert error.rule == "operator" and "OneHotEncoder" in str(error)
    training = through([helper.make_node("Dropout", ["s0", "", "yes"], ["t"])],
                       [helper.make_tensor("yes", TensorProto.BOOL, [], [True])])
    assert "random mask" in str(refusal(training))
    assert verdict(through([helper.make_node("Dropout", ["s0"], ["t"])])) == "ok:scores"


def test_pred_onnx_5_nodes_must_come_in_topological_order_and_write_each_name_once() -> None:
    """[PRED-ONNX.5] Types are followed in node order, as ONNX requires: a node reading a
    value no earlier node wrote, or writing a name already defined, is refused (``graph``)."""
    nodes = om.mlp_nodes()
    unordered = om._model([nodes[1], nodes[0], nodes[2]], om.weights())
    error = refusal(unordered)
    assert error.rule == "graph" and "topological order" in str(error)
    twice = om._model([*nodes[:2], helper.make_node("Identity", ["x"], ["h"]), nodes[2]],
                      om.weights())
    assert "already defined" in str(refusal(twice))


def test_pred_onnx_5_real_exports_with_integer_size_arithmetic_pass() -> None:
    """[PRED-ONNX.5] torch.onnx (legacy exporter) of a network that reshapes by
    ``x.size(1) // 2`` (Shape, Gather, Div by a Constant, Cast between integers), with
    LayerNorm, GELU, dropout in eval mode and a softmax, passes; so does skl2onnx's SVC
    (a Cast to float after the SVM)."""
    import io

    import torch
    from skl2onnx import to_onnx
    from sklearn.datasets import load_wine
    from sklearn.svm import SVC
    from torch import nn

    class Halves(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm, self.fc = nn.LayerNorm(32), nn.Linear(32, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = x.reshape(x.size(0), x.size(1) // 2, 2).mean(-1)
            h = nn.functional.dropout(nn.functional.gelu(self.norm(h)), 0.2, False)
            return torch.softmax(self.fc(h) / 2.0, dim=1)

    buf = io.BytesIO()
    torch.onnx.export(Halves().eval(), (torch.zeros(2, 64),), buf, dynamo=False,
                      input_names=["x"], output_names=["scores"], opset_version=17,
                      dynamic_axes={"x": {0: "n"}, "scores": {0: "n"}})
    digits = OutputSchema("classes", tuple(str(i) for i in range(10)))
    checked = check_onnx(buf.getvalue(), InputSchema("float32", 64), digits)
    assert {"ai.onnx:Div", "ai.onnx:Shape", "ai.onnx:Cast"} <= set(checked.operators)
    x, y = load_wine(return_X_y=True)
    svc = to_onnx(SVC(probability=True, random_state=0).fit(x, y), x[:1].astype(np.float32),
                  options={"zipmap": False}, target_opset={"": 17, "ai.onnx.ml": 3})
    assert check_onnx(svc.SerializeToString(), InputSchema("float32", 13),
                      OutputSchema("classes", ("0", "1", "2"))).width == 3


def _spec_list(label: str) -> set[str]:
    text = PREDICT_MD.read_text()
    rule = text[text.index("**[PRED-ONNX.4]"):text.index("**[PRED-ONNX.5]")]
    [line] = [ln for ln in rule.splitlines() if ln.startswith(f"- {label}")]
    return set(re.findall(r"`([A-Za-z0-9]+)`", line.split(":", 1)[1]))


def test_pred_onnx_4_the_allow_list_in_predict_md_is_the_code_s() -> None:
    """[PRED-ONNX.4] [PRED-ONNX.5] predict.md lists exactly the allowed operators of each
    domain, and names every conditionally allowed one."""
    assert _spec_list("Default domain") == set(DEFAULT_OPS)
    assert _spec_list("`ai.onnx.ml`") == set(ML_OPS)
    text = PREDICT_MD.read_text()
    rule = text[text.index("**[PRED-ONNX.5]"):]
    rule = rule[:rule.index("\n## ")]
    for op in CONDITIONS:
        assert f"`{op}`" in rule, op
