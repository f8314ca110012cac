"""The ONNX model file, checked without running it [JOB-EXPORT.4-7].

An ONNX model is a protobuf ``ModelProto``: a graph of named operators over named tensors.
Parsing it runs no code of its author's, but *running* it does whatever its operators do:
a custom-domain operator is native code the runtime would look up, an external-data tensor
names a file on the machine that loads it, a ``Loop`` may never end, a tensor may declare
gigabytes. So before anything runs a model (ONNX Runtime, only ever inside an executor's
prediction sandbox [PRED-EXEC.6]), this module checks it, and it is the one check the
deploying host and every executor run [PRED-ONNX.1]: the file's size, then a walk of its
wire format that counts nodes, messages, strings, numbers and text against fixed bounds
before anything is parsed (``onnx_wire``, [PRED-ONNX.2]: a parse costs 58 times the file
and more), then a parse with the ``onnx`` package's protobuf classes alone (no checker that
loads external data, no shape inference, no runtime) and, in order: IR and opset versions,
that nothing lies outside the file (external data, sparse or training data, model-local
functions), each operator against an allow-list (default domain, and ``ai.onnx.ml`` for
scikit-learn exports, ``onnx_ops`` [PRED-ONNX.4]), no sub-graph (control flow), every
tensor's element type, rank, element count and stored size, the single input and the scores
output against the deployed schema, and last each tensor's element type followed through
the graph, so that no operator meets an input for which C++ leaves its result undefined
(a float cast to an integer, an integer division by zero, [PRED-ONNX.5]). Every refusal is a
``ModelFormatError`` naming the rule and carrying the bad data, and its message names the
formats that are deployable.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from chain.predict.model import InputSchema, OutputSchema
from sandbox.model_format import ModelFormatError
from sandbox.onnx_ops import ALLOWED_OPS, check_types
from sandbox.onnx_wire import MAX_NODES, MAX_RANK, prescan, refuse_bound

MAX_ONNX_BYTES = 64 * 1024 * 1024
"""[JOB-EXPORT.4] The largest ONNX file (the template's model is ~30 KB, a small CNN ~1 MB)."""
IR_VERSIONS = (7, 11)
"""[JOB-EXPORT.4] Accepted ``ir_version`` range (torch.onnx legacy 8, dynamo 10, skl2onnx 10)."""
OPSETS = {"": (13, 22), "ai.onnx.ml": (1, 5)}
"""[JOB-EXPORT.4] Accepted operator-set versions per domain (``ai.onnx`` is ``""``)."""
MAX_TENSOR_ELEMENTS = 1 << 24
"""[JOB-EXPORT.6] The most elements one stored tensor may declare (64 MiB of float32)."""
MAX_DIM = 1 << 24

FLOAT, DOUBLE, STRING = 1, 11, 8
ITEM_BYTES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8,
              16: 2}
"""[JOB-EXPORT.6] Numeric element types (``TensorProto.DataType``) and their sizes: no
strings, complex numbers or 4-bit/8-bit float types."""
_FIELD_OF = {1: "float_data", 11: "double_data", 7: "int64_data", 12: "uint64_data",
             13: "uint64_data"}
_SCHEMA_TYPES = {"float32": FLOAT, "float64": DOUBLE}
_ATTR_GRAPH, _ATTR_GRAPHS, _ATTR_TENSOR, _ATTR_TENSORS = 5, 10, 4, 9
_ATTR_SPARSE, _ATTR_SPARSES, _ATTR_TYPE_PROTO, _ATTR_TYPE_PROTOS = 11, 12, 13, 14


@dataclass(frozen=True, slots=True)
class OnnxModel:
    """What the checks found: enough for the executor to run the model [PRED-EXEC.6]."""

    ir_version: int
    opsets: tuple[tuple[str, int], ...]
    operators: tuple[str, ...]
    """Sorted ``domain:op`` names used."""
    input_name: str
    scores_name: str
    scores_dtype: str
    """``float32`` or ``float64``: the scores output's element type."""
    width: int


def refuse(rule: str, message: str, detail: object = None) -> ModelFormatError:
    """A refusal; its message ends with the formats that are deployable [JOB-EXPORT.1]."""
    return ModelFormatError(rule, f"ONNX: {message}", detail)


def parse_onnx(data: bytes, max_bytes: int = MAX_ONNX_BYTES) -> Any:
    """[JOB-EXPORT.4] [PRED-ONNX.2] The ``ModelProto`` in ``data``: a protobuf parse, nothing
    run, and only once the wire walk has counted everything the parse would build."""
    if len(data) > max_bytes:
        raise refuse("size", f"ONNX file over {max_bytes} bytes", len(data))
    prescan(data)
    from google.protobuf.message import DecodeError
    from onnx import ModelProto

    model = ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RecursionError) as e:
        raise refuse("header", f"not an ONNX model (protobuf parse failed: {e})",
                     data[:16]) from None
    if not model.HasField("graph"):
        raise refuse("header", "not an ONNX model (no graph)", data[:16])
    return model


def _versions(model: Any) -> tuple[tuple[str, int], ...]:
    """[JOB-EXPORT.4] IR version and one version per imported domain, each in range."""
    lo, hi = IR_VERSIONS
    if not lo <= model.ir_version <= hi:
        raise refuse("version", f"ONNX ir_version must be {lo}..{hi}", model.ir_version)
    opsets: dict[str, int] = {}
    for imp in model.opset_import:
        domain = "" if imp.domain == "ai.onnx" else imp.domain
        if domain not in OPSETS:
            raise refuse("domain", f"operator domain {imp.domain!r} is not allowed (custom "
                                   f"operators run native code); allowed: ai.onnx, ai.onnx.ml",
                         imp.domain)
        low, high = OPSETS[domain]
        if not low <= imp.version <= high or opsets.get(domain, imp.version) != imp.version:
            raise refuse("version", f"opset of {imp.domain or 'ai.onnx'!r} must be "
                                    f"{low}..{high}, imported once", imp.version)
        opsets[domain] = imp.version
    if "" not in opsets:
        raise refuse("version", "no ai.onnx opset imported", sorted(opsets))
    return tuple(sorted(opsets.items()))


def _outside(model: Any) -> None:
    """[JOB-EXPORT.6] Nothing the file points outside itself, or that we do not run."""
    if len(model.functions):
        raise refuse("function", "model-local functions are not allowed (inline them)",
                     [f.name for f in model.functions][:4])
    if len(model.training_info):
        raise refuse("graph", "training information is not allowed", len(model.training_info))
    if len(model.graph.sparse_initializer):
        raise refuse("tensor", "sparse initializers are not allowed",
                     [t.values.name for t in model.graph.sparse_initializer][:4])


def _nodes(model: Any, opsets: dict[str, int]) -> tuple[str, ...]:
    """[JOB-EXPORT.5] Every node: an imported, allowed domain, an allowed operator, no
    sub-graph attribute; its tensor attributes checked as initializers are."""
    graph = model.graph
    if len(graph.node) > MAX_NODES:  # counted by the wire walk already [PRED-ONNX.2]
        raise refuse("graph", f"more than {MAX_NODES} nodes", len(graph.node))
    used = set()
    for node in graph.node:
        domain = "" if node.domain == "ai.onnx" else node.domain
        if domain not in opsets:
            raise refuse("domain", f"node {node.name!r} uses domain {node.domain!r}, not "
                                   f"an imported, allowed one (ai.onnx, ai.onnx.ml)",
                         node.domain)
        if node.op_type not in ALLOWED_OPS[domain]:
            raise refuse("operator", f"operator {node.domain or 'ai.onnx'!r}:{node.op_type!r} is "
                                     f"not on the allow-list (predict.md [PRED-ONNX.4])",
                         node.op_type)
        for attr in node.attribute:
            if attr.type in (_ATTR_GRAPH, _ATTR_GRAPHS) or attr.HasField("g") or len(attr.graphs):
                raise refuse("graph", f"node {node.name!r} holds a sub-graph ({attr.name!r})",
                             node.op_type)
            if attr.type in (_ATTR_SPARSE, _ATTR_SPARSES, _ATTR_TYPE_PROTO, _ATTR_TYPE_PROTOS):
                raise refuse("tensor", f"node {node.name!r}: attribute {attr.name!r} of type "
                                       f"{attr.type} is not allowed", attr.name)
            for tensor in ([attr.t] if attr.HasField("t") else []) + list(attr.tensors):
                check_tensor(tensor, f"{node.op_type} {node.name!r} attribute {attr.name!r}")
        used.add(f"{domain or 'ai.onnx'}:{node.op_type}")
    return tuple(sorted(used))


def _elements(dims: Iterable[int], where: str) -> int:
    dims = list(dims)
    if any(d < 0 or d > MAX_DIM for d in dims):
        raise refuse("tensor", f"{where}: dimensions must be 0..{MAX_DIM}", dims[:8])
    n = math.prod(dims)
    if n > MAX_TENSOR_ELEMENTS:
        raise refuse("tensor", f"{where}: {n} elements, over {MAX_TENSOR_ELEMENTS} (a huge "
                               f"initializer)", dims[:8])
    return n


def check_tensor(tensor: Any, where: str) -> None:
    """[JOB-EXPORT.6] A stored tensor: inside the file, numeric, bounded, its data exactly
    its declared size."""
    if tensor.data_location == 1 or len(tensor.external_data):
        raise refuse("external", f"{where}: tensor {tensor.name!r} keeps its data in an "
                                 f"external file", [e.key + "=" + e.value[:40]
                                                    for e in tensor.external_data][:3])
    if len(tensor.dims) > MAX_RANK:
        raise refuse_bound("tensor rank", len(tensor.dims), f"{where}: tensor {tensor.name!r}")
    if tensor.data_type not in ITEM_BYTES:
        raise refuse("tensor", f"{where}: tensor {tensor.name!r} has element type "
                               f"{tensor.data_type}; numeric types only", tensor.data_type)
    n = _elements(tensor.dims, f"{where}: tensor {tensor.name!r}")
    if tensor.HasField("raw_data"):
        stored = len(tensor.raw_data) // ITEM_BYTES[tensor.data_type]
        size_ok = len(tensor.raw_data) == n * ITEM_BYTES[tensor.data_type]
    else:
        field = _FIELD_OF.get(tensor.data_type, "int32_data")
        stored = len(getattr(tensor, field))
        size_ok = stored == n
    if not size_ok:
        raise refuse("tensor", f"{where}: tensor {tensor.name!r} declares {n} elements and "
                               f"stores {stored}", list(tensor.dims)[:8])


def _value_shape(value: Any) -> tuple[int, list[Any]]:
    """(element type, dims as int or None for a symbolic/unknown dim) of a tensor value."""
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        raise refuse("io", f"{value.name!r} is a {kind}, not a tensor (skl2onnx: "
                           f"options={{'zipmap': False}})", kind)
    t = value.type.tensor_type
    if not t.HasField("shape"):
        return t.elem_type, []
    return t.elem_type, [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]


_TYPE_NAMES = {FLOAT: "float32", DOUBLE: "float64", 10: "float16", 16: "bfloat16", 6: "int32",
               7: "int64", STRING: "string"}


def _check_input(name: str, elem: int, dims: list[Any], schema: InputSchema) -> None:
    """[JOB-EXPORT.7] The input is the schema's dtype, ``[batch, features]``, batch symbolic;
    each mismatch refused with the hint for that mismatch, not a generic one."""
    want = f"{schema.dtype} [batch, {schema.features}] with a symbolic batch dimension"
    if elem != _SCHEMA_TYPES[schema.dtype]:
        got = _TYPE_NAMES.get(elem, f"element type {elem}")
        other = next((d for d, t in _SCHEMA_TYPES.items() if t == elem), None)
        hint = (f"deploy with --dtype {other}, or export with {schema.dtype} rows "
                f"(skl2onnx: to_onnx(model, X[:1].astype('{schema.dtype}')))"
                if other else f"export with {schema.dtype} rows")
        raise refuse("io", f"input {name!r} is {got}, the schema says {schema.dtype} "
                           f"({hint})", [got, dims])
    if len(dims) != 2 or (dims[1] is not None and dims[1] != schema.features):
        raise refuse("io", f"input {name!r} has shape {dims}, the schema says [batch, "
                           f"{schema.features}] (deploy with --features matching the "
                           f"model, or export rows of {schema.features} features)",
                     [_TYPE_NAMES[elem], dims])
    if dims[1] is None:
        raise refuse("io", f"input {name!r} has a symbolic feature dimension; it must be "
                           f"{schema.features} (export with a fixed number of features)",
                     [_TYPE_NAMES[elem], dims])
    if dims[0] not in (None, 0):
        raise refuse("io", f"input {name!r} has a fixed batch of {dims[0]}; it must be "
                           f"{want} (torch.onnx: dynamic_axes={{'x': {{0: 'n'}}}}; "
                           f"skl2onnx: the default)", [_TYPE_NAMES[elem], dims])



def _io(model: Any, schema: InputSchema, output: OutputSchema) -> tuple[str, str, str, int]:
    """[JOB-EXPORT.7] One input ``[batch, features]`` of the schema's dtype; the scores
    output: the first float/double output ``[batch, width]``; every output a tensor."""
    graph = model.graph
    stored = {t.name for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in stored]
    if len(inputs) != 1:
        raise refuse("io", "the model must take exactly one input", [v.name for v in inputs])
    elem, dims = _value_shape(inputs[0])
    _check_input(inputs[0].name, elem, dims, schema)
    width = len(output.labels) if output.kind == "classes" else output.outputs
    if not len(graph.output):
        raise refuse("io", "the model has no output", [])
    scores = None
    for value in graph.output:
        elem, dims = _value_shape(value)
        if scores is None and elem in (FLOAT, DOUBLE) and len(dims) == 2:
            scores = (value.name, "float32" if elem == FLOAT else "float64", dims)
    if scores is None:
        raise refuse("io", "no float or double output of rank 2 (the scores)",
                     [v.name for v in graph.output][:4])
    name, dtype, dims = scores
    if dims[0] not in (None, 0) or dims[1] != width:
        raise refuse("io", f"scores output {name!r} must be [batch, {width}] ({output.kind} "
                           f"of the deployed schema)", dims)
    return inputs[0].name, name, dtype, width


def check_onnx(data: bytes, schema: InputSchema, output: OutputSchema,
               max_bytes: int = MAX_ONNX_BYTES) -> OnnxModel:
    """[JOB-EXPORT.4-7] [PRED-ONNX.1-5] The checked ONNX model in ``data``, or
    ``ModelFormatError``: the one check the deploying host, ``model check`` and every
    executor's sandbox run, its verdict a function of the bytes alone [PRED-ONNX.1]."""
    model = parse_onnx(data, max_bytes)
    _outside(model)
    opsets = _versions(model)
    operators = _nodes(model, dict(opsets))
    for tensor in model.graph.initializer:
        check_tensor(tensor, "initializer")
    input_name, scores_name, dtype, width = _io(model, schema, output)
    check_types(model.graph, input_name, _SCHEMA_TYPES[schema.dtype])
    return OnnxModel(model.ir_version, opsets, operators, input_name, scores_name, dtype,
                     width)

