"""The operators a deployable ONNX model may use, and the inputs for which their results are
defined [PRED-ONNX.4] [PRED-ONNX.5].

Every executor must compute the same answer from the same model [PRED-EXEC.6]. ONNX Runtime's
kernels are C++, and C++ leaves some results undefined: a float converted to an integer type
out of its range (x86-64 answers ``INT_MIN``, ARM saturates, NaN gives 0 on one and
``INT_MIN`` on the other), an integer divided by zero or ``INT_MIN / -1`` (x86-64 traps and
the sandbox's server dies; ARM answers 0). So the allow-list names operators, and for those
whose result is undefined for some inputs of some element types, this module follows each
tensor's element type through the graph (the input's, each initializer's, and each
operator's rule for its outputs: nodes must come in topological order, as ONNX requires) and
refuses the node where an undefined case can arise: a cast from a floating type to an
integer type, integer division by anything but a constant with no 0 and no -1, an integer
operator computed in floating point and converted back (``Pow``, ``ReduceL2``,
``ReduceLogSum``, ``ReduceLogSumExp``, ``Shrink``) or dividing by a size (``ReduceMean``),
a floating input to ``OneHotEncoder``, and a
``Dropout`` that may train (a random mask). Refusals are ``ModelFormatError`` rule
``operator`` (the allow-list's rule) or ``graph`` (order).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sandbox.model_format import ModelFormatError

_DEFAULT_OPS = """
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization
Cast CastLike Ceil Celu Clip Concat Constant Conv ConvTranspose Cos Cosh CumSum DepthToSpace
Div Dropout Einsum Elu Equal Erf Exp Expand Flatten Floor Gather GatherElements GatherND Gelu
Gemm GlobalAveragePool GlobalMaxPool Greater GreaterOrEqual GroupNormalization HardSigmoid
HardSwish Hardmax Identity InstanceNormalization IsInf IsNaN LRN LayerNormalization LeakyRelu
Less LessOrEqual Log LogSoftmax LpNormalization MatMul Max MaxPool Mean Min Mish Mod Mul Neg
Not Or PRelu Pad Pow Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax
ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Round Selu Shape Shrink
Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub
Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Where Xor
"""
DEFAULT_OPS = frozenset(_DEFAULT_OPS.split())
"""[PRED-ONNX.4] Default-domain operators a deployable model may use: arithmetic, neural
network layers, shape handling. Not control flow (``If``, ``Loop``, ``Scan``: sub-graphs,
unbounded loops), not random generators (answers must agree), not strings, sequences or
optional values, not ``ConstantOfShape``/``Range``/``NonZero`` (sizes read from data). The
operators marked in ``CONDITIONS`` only where their result is defined [PRED-ONNX.5]."""
_ML_OPS = """
ArrayFeatureExtractor Binarizer FeatureVectorizer Imputer LinearClassifier LinearRegressor
Normalizer OneHotEncoder SVMClassifier SVMRegressor Scaler TreeEnsemble TreeEnsembleClassifier
TreeEnsembleRegressor
"""
ML_OPS = frozenset(_ML_OPS.split())
"""[PRED-ONNX.4] ``ai.onnx.ml`` operators (what skl2onnx writes for linear models, SVMs,
trees and forests, scalers). Not ``ZipMap`` (a map output: export with
``options={"zipmap": False}``), ``DictVectorizer``, ``CategoryMapper``, ``LabelEncoder``
(maps and strings)."""
ALLOWED_OPS = {"": DEFAULT_OPS, "ai.onnx": DEFAULT_OPS, "ai.onnx.ml": ML_OPS}
CONDITIONS = {
    "Cast": "not from a floating type (or one not known) to an integer type; no strings",
    "CastLike": "as Cast, the target being the second input's type",
    "Div": "on integers, only by a constant with no 0 (and no -1 for a signed type)",
    "Mod": "on integers, only by a constant with no 0 (and no -1 for a signed type)",
    "Pow": "only of a floating base",
    "ReduceMean": "only of a floating input (an empty axis divides an integer by 0)",
    "ReduceL2": "only of a floating input",
    "ReduceLogSum": "only of a floating input",
    "ReduceLogSumExp": "only of a floating input",
    "Shrink": "only of a floating input",
    "OneHotEncoder": "only of an integer or string input",
    "Dropout": "only without the training_mode input (inference: the identity)",
}
"""[PRED-ONNX.5] The allowed operators whose result is undefined for some inputs, and where
they stay allowed."""

UNKNOWN, FLOAT, INT64, STRING, BOOL, DOUBLE = 0, 1, 7, 8, 9, 11
FLOATING = frozenset({1, 10, 11, 16})
"""float, float16, double, bfloat16."""
INTEGERS = frozenset({2, 3, 4, 5, 6, 7, 12, 13})
SIGNED = frozenset({3, 5, 6, 7})
NUMERIC = FLOATING | INTEGERS | {BOOL}
_BOOL_OUT = frozenset({"Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "And",
                       "Or", "Xor", "Not", "IsInf", "IsNaN"})
_INT64_OUT = frozenset({"Shape", "Size", "ArgMax", "ArgMin"})
_FLOAT_OUT = frozenset({"LinearRegressor", "SVMRegressor", "TreeEnsembleRegressor", "Scaler",
                        "Normalizer", "OneHotEncoder", "FeatureVectorizer"})
_CLASSIFIERS = frozenset({"LinearClassifier", "SVMClassifier", "TreeEnsembleClassifier"})
_DIVISIONS = frozenset({"Div", "Mod"})
_BACK_TO_INT = "computed in floating point and converted back to the integer type"
_FLOATING_ONLY = {"Pow": f"an integer Pow is {_BACK_TO_INT} (3^50 gives INT64_MIN on x86-64)",
                  "ReduceMean": "an integer mean divides by the reduced size, 0 for an "
                                "empty axis",
                  "ReduceL2": f"an integer L2 norm is {_BACK_TO_INT} (NaN once the sum "
                              f"wraps)",
                  "ReduceLogSum": f"an integer log-sum is {_BACK_TO_INT} (-inf for 0)",
                  "ReduceLogSumExp": f"an integer log-sum-exp is {_BACK_TO_INT}",
                  "Shrink": f"an integer Shrink's sum with its float bias is {_BACK_TO_INT}"}


def _attr(node: Any, name: str) -> Any:
    for attr in node.attribute:
        if attr.name == name:
            return attr
    return None


def _constant_type(node: Any) -> int:
    """The element type of a ``Constant`` node's value."""
    for attr in node.attribute:
        if attr.name == "value":
            return int(attr.t.data_type)
        if attr.name in ("value_float", "value_floats"):
            return FLOAT
        if attr.name in ("value_int", "value_ints"):
            return INT64
        if attr.name in ("value_string", "value_strings"):
            return STRING
    return UNKNOWN


def output_types(node: Any, inputs: list[int]) -> list[int]:
    """The element type of each output of an allowed ``node`` given its inputs' types
    (``UNKNOWN`` where the rule does not say)."""
    op, n = node.op_type, len(node.output)
    first = inputs[0] if inputs else UNKNOWN
    if op in _BOOL_OUT:
        return [BOOL] * n
    if op in _INT64_OUT:
        return [INT64] * n
    if op in _FLOAT_OUT:
        return [FLOAT] * n
    if op == "Cast":
        to = _attr(node, "to")
        return [int(to.i) if to is not None else UNKNOWN] * n
    if op == "CastLike":
        return [inputs[1] if len(inputs) > 1 else UNKNOWN] * n
    if op == "Constant":
        return [_constant_type(node)] * n
    if op == "Where":
        return [inputs[1] if len(inputs) > 1 else UNKNOWN] * n
    if op == "TopK":
        return [first, INT64][:n]
    if op == "Dropout":
        return [first, BOOL][:n]
    if op == "MaxPool":
        return [first, INT64][:n]
    if op == "LayerNormalization":
        return [first, FLOAT, FLOAT][:n]
    if op in _CLASSIFIERS:
        labels = INT64 if _attr(node, "classlabels_ints") is not None else STRING
        return [labels, FLOAT][:n]
    if op in ("Split", "BatchNormalization"):
        return [first] * n
    return [first] + [UNKNOWN] * (n - 1)


def _safe_divisor(values: np.ndarray | None, dtype: int) -> bool:
    """A constant divisor with no 0, and no -1 for a signed type (``INT_MIN / -1``)."""
    if values is None or values.size == 0:
        return False
    return bool(np.all(values != 0) and (dtype not in SIGNED or np.all(values != -1)))


def undefined_case(node: Any, domain: str, inputs: list[int],
                   divisor: np.ndarray | None) -> str | None:
    """[PRED-ONNX.5] Why ``node``'s result may be undefined for some input, or None.
    ``inputs``: the element types of its inputs; ``divisor``: the values of its second
    input when that is a constant."""
    op = node.op_type
    first = inputs[0] if inputs else UNKNOWN
    if domain == "ai.onnx.ml":
        if op == "OneHotEncoder" and first not in INTEGERS | {STRING}:
            return (f"OneHotEncoder of element type {first}: ONNX Runtime converts each "
                    f"value to int64, undefined out of range")
        return None
    if op in ("Cast", "CastLike"):
        target = (output_types(node, inputs) or [UNKNOWN])[0]
        if target not in NUMERIC or first == STRING:
            return f"{op} from element type {first} to {target}: numbers only"
        if target in INTEGERS and first not in INTEGERS | {BOOL}:
            return (f"{op} from element type {first} to integer type {target}: a float out "
                    f"of the integer's range converts differently on x86-64 and ARM")
    if op in _DIVISIONS and first not in FLOATING and not _safe_divisor(divisor, first):
        return (f"integer {op} (element type {first}) by a divisor that is not a constant "
                f"without 0 and -1: x / 0 and INT_MIN / -1 trap on x86-64")
    if op in _FLOATING_ONLY and first not in FLOATING:
        return f"{op} of element type {first}: {_FLOATING_ONLY[op]}"
    if op == "Dropout" and len(node.input) > 2 and node.input[2]:
        return "Dropout with a training_mode input draws a random mask"
    return None


def _refuse(rule: str, message: str, detail: object) -> ModelFormatError:
    return ModelFormatError(rule, f"ONNX: {message}", detail)


def _constants(graph: Any) -> dict[str, Any]:
    """Where each constant tensor's values are, by name: initializers and the value
    attributes of ``Constant`` nodes (read only when a divisor needs them)."""
    found: dict[str, Any] = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and len(node.output) == 1:
            for attr in node.attribute:
                if attr.name in ("value", "value_int", "value_ints"):
                    found[node.output[0]] = attr
    return found


def _values(constant: Any) -> np.ndarray | None:
    """The numbers of an initializer or a ``Constant``'s value attribute."""
    if constant is None:
        return None
    if hasattr(constant, "ints"):  # an AttributeProto
        if constant.name == "value_int":
            return np.asarray([constant.i], dtype=np.int64)
        if constant.name == "value_ints":
            return np.asarray(constant.ints, dtype=np.int64)
        constant = constant.t
    from onnx import numpy_helper

    try:
        return np.asarray(numpy_helper.to_array(constant))
    except (ValueError, TypeError):
        return None


def check_types(graph: Any, input_name: str, input_type: int) -> dict[str, int]:
    """[PRED-ONNX.5] Follow element types through ``graph`` (nodes in topological order) and
    refuse the first node whose result may be undefined; the type of every tensor."""
    types = {t.name: int(t.data_type) for t in graph.initializer}
    types[input_name] = input_type
    constants = _constants(graph)
    for node in graph.node:
        domain = "" if node.domain == "ai.onnx" else node.domain
        inputs = []
        for name in node.input:
            if name and name not in types:
                raise _refuse("graph", f"node {node.name!r} ({node.op_type}) reads {name!r} "
                                       f"before any node writes it (ONNX requires nodes in "
                                       f"topological order)", name)
            inputs.append(types.get(name, UNKNOWN))
        divisor = None
        if node.op_type in _DIVISIONS and len(node.input) > 1:
            divisor = _values(constants.get(node.input[1]))
        reason = undefined_case(node, domain, inputs, divisor)
        if reason is not None:
            raise _refuse("operator", f"node {node.name!r}: {reason} (predict.md "
                                      f"[PRED-ONNX.5])", node.op_type)
        for name, kind in zip(node.output, output_types(node, inputs), strict=False):
            if name in types:
                raise _refuse("graph", f"node {node.name!r} ({node.op_type}) writes {name!r}, "
                                       f"which is already defined (ONNX names each value "
                                       f"once)", name)
            if name:
                types[name] = kind
    return types
