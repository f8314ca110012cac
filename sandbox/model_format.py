"""The deployable model file: safetensors weights that cannot run code on load [JOB-EXPORT.1-3].

A job's model file is ``/output/model.pt`` [JOB-TRAIN.3]; as a torch pickle, loading it on
the host would run whatever its author put in it. A model that serves predictions is that
same file written in a deployable format [JOB-EXPORT.1] (there is no second file): here
``safetensors-mlp/v1``, one safetensors file: a little-endian u64 header length, a JSON
header naming each tensor's dtype, shape and byte range, then raw numbers. Nothing in it is
code.

This loader goes further than trusting the format: it reads and checks the JSON header
itself (size bounds, exact tensor names, dtypes and shapes against the declared schema,
contiguous byte ranges) *before* any library parses the data, so a pickle, a zip (torch.save)
or a lying header is refused with ``ModelFormatError`` naming the rule and carrying the bad
data. The architecture is a multi-layer perceptron (a linear model is one layer):
``layer{i}.weight`` ``[out, in]`` and ``layer{i}.bias`` ``[out]``, ReLU between layers.
See protocol_spec/job_contract.md §4a.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from chain.predict.model import InputSchema, OutputSchema
from sandbox.errors import SandboxError

FORMAT = "safetensors-mlp/v1"
META_KEY = "lc-model"
MAX_MODEL_BYTES = 256 * 1024 * 1024
MAX_HEADER_BYTES = 1024 * 1024
MAX_LAYERS = 8
MAX_WIDTH = 65_536
ACTIVATIONS = ("relu", "square")
"""Between layers: ReLU, or x² (a polynomial activation, as CryptoNets: a two-layer square
MLP with one output evaluates under CKKS [PRED-CKKS.3])."""
DEPLOYABLE_FORMATS = ("safetensors-mlp/v1 (deploy format safetensors-mlp) or ONNX (deploy format "
                      "onnx), written by train as /output/model.pt (job_contract.md §4a)")
"""[JOB-EXPORT.1] What every refusal of a model file names: the formats that do deploy."""
_DTYPES = {"float32": ("F32", np.float32, 4), "float64": ("F64", np.float64, 8)}


class ModelFormatError(SandboxError):
    """A model file that is not a well-formed export of the declared schema [JOB-EXPORT.2].

    ``rule`` names the check that failed; ``detail`` is a short, inert picture of the bad
    data (never the file itself). The message ends with the formats that are deployable, so
    every refusal tells the author what would have been accepted [JOB-EXPORT.1]."""

    def __init__(self, rule: str, message: str, detail: object = None) -> None:
        shown = repr(detail)
        self.rule, self.detail = rule, shown if len(shown) <= 120 else shown[:120] + "…"
        super().__init__(f"{rule}: {message} (got {self.detail}); deployable formats: "
                         f"{DEPLOYABLE_FORMATS}")


@dataclass(frozen=True, slots=True)
class Mlp:
    """A loaded model: ``layers`` as (weight [out, in], bias [out]) pairs, ``activation``
    (ReLU or x²) between."""

    dtype: str
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]
    activation: str = "relu"

    @property
    def features(self) -> int:
        return int(self.layers[0][0].shape[1])

    def forward(self, rows: np.ndarray) -> np.ndarray:
        """Scores (logits or regression outputs) of ``rows`` [n, features], in float64."""
        x = np.asarray(rows, dtype=np.float64)
        for i, (w, b) in enumerate(self.layers):
            x = x @ w.astype(np.float64).T + b.astype(np.float64)
            if i < len(self.layers) - 1:
                x = np.maximum(x, 0.0) if self.activation == "relu" else x * x
        return x


def export_mlp(layers: list[tuple[np.ndarray, np.ndarray]], dtype: str = "float32",
               activation: str = "relu") -> bytes:
    """[JOB-EXPORT.1] The bytes of a ``safetensors-mlp/v1`` model file for an MLP (a job's
    train writes them as ``/output/model.pt``; tests build models with it)."""
    if dtype not in _DTYPES:
        raise ModelFormatError("export", "dtype must be float32 or float64", dtype)
    np_dtype = _DTYPES[dtype][1]
    tensors: dict[str, np.ndarray] = {}
    for i, (w, b) in enumerate(layers):
        tensors[f"layer{i}.weight"] = np.ascontiguousarray(w, dtype=np_dtype)
        tensors[f"layer{i}.bias"] = np.ascontiguousarray(b, dtype=np_dtype)
    if activation not in ACTIVATIONS:
        raise ModelFormatError("export", f"activation must be one of {ACTIVATIONS}", activation)
    meta = {"format": FORMAT, "layers": len(layers), "activation": activation}
    return st_save(tensors, metadata={META_KEY: json.dumps(meta, sort_keys=True)})


def _header(data: bytes, max_bytes: int) -> dict[str, Any]:
    """[JOB-EXPORT.2] Size bounds, then the JSON header, parsed by us from bounded bytes."""
    if len(data) > max_bytes:
        raise ModelFormatError("size", f"model file over {max_bytes} bytes", len(data))
    if len(data) < 8:
        raise ModelFormatError("header", "shorter than the 8-byte header length", data[:8])
    (n,) = struct.unpack("<Q", data[:8])
    if not 2 <= n <= min(MAX_HEADER_BYTES, len(data) - 8):
        raise ModelFormatError("header", "header length out of bounds (not a safetensors "
                                         "file: a pickle or zip starts otherwise)", data[:16])
    raw = data[8:8 + n]
    if raw[:1] != b"{":
        raise ModelFormatError("header", "header is not a JSON object", raw[:16])
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ModelFormatError("header", f"header is not JSON: {e}", raw[:32]) from e
    if not isinstance(header, dict):
        raise ModelFormatError("header", "header is not a JSON object", type(header).__name__)
    return header


def _meta(header: dict[str, Any]) -> tuple[int, str]:
    meta_map = header.pop("__metadata__", None)
    if not isinstance(meta_map, dict) or not isinstance(meta_map.get(META_KEY), str):
        raise ModelFormatError("meta", f"no {META_KEY!r} metadata", meta_map)
    try:
        meta = json.loads(meta_map[META_KEY])
    except json.JSONDecodeError as e:
        raise ModelFormatError("meta", "metadata is not JSON", meta_map[META_KEY]) from e
    layers = meta.get("layers") if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT \
            or meta.get("activation") not in ACTIVATIONS \
            or type(layers) is not int or not 1 <= layers <= MAX_LAYERS:
        raise ModelFormatError("meta", f"expected format {FORMAT}, activation relu or square, "
                                       f"1..{MAX_LAYERS} layers", meta)
    return layers, str(meta["activation"])


def _check_tensors(header: dict[str, Any], layers: int, dtype: str, features: int,
                   outputs: int, body: int) -> None:
    """[JOB-EXPORT.3] Exactly the layer tensors, in the declared dtype, with chained shapes,
    each byte range exactly its shape's size, the ranges tiling the body."""
    expected = {f"layer{i}.{p}" for i in range(layers) for p in ("weight", "bias")}
    if set(header) != expected:
        raise ModelFormatError("tensors", "tensor names differ from the architecture",
                               sorted(set(header) ^ expected))
    st_dtype, _, size = _DTYPES[dtype]
    spans = []
    width = features
    for i in range(layers):
        w_shape = _tensor(header, f"layer{i}.weight", st_dtype)
        if len(w_shape) != 2 or w_shape[1] != width:
            raise ModelFormatError("shape", f"layer{i}.weight: want [out, {width}]", w_shape)
        width = w_shape[0]
        b_shape = _tensor(header, f"layer{i}.bias", st_dtype)
        if b_shape != [width]:
            raise ModelFormatError("shape", f"layer{i}.bias: want [{width}]", b_shape)
        for name, shape in ((f"layer{i}.weight", w_shape), (f"layer{i}.bias", b_shape)):
            offsets = header[name].get("data_offsets")
            if not isinstance(offsets, list) or len(offsets) != 2 \
                    or not all(type(o) is int and o >= 0 for o in offsets) \
                    or offsets[1] - offsets[0] != size * int(np.prod(shape)):
                raise ModelFormatError("offsets", f"{name}: byte range does not fit its shape",
                                       offsets)
            spans.append((offsets[0], offsets[1]))
    if width != outputs:
        raise ModelFormatError("shape", f"last layer has {width} outputs, the schema {outputs}",
                               width)
    spans.sort()
    if spans[0][0] != 0 or spans[-1][1] != body \
            or any(a[1] != b[0] for a, b in pairwise(spans)):
        raise ModelFormatError("offsets", "byte ranges do not tile the body exactly", spans[:4])


def _tensor(header: dict[str, Any], name: str, st_dtype: str) -> list[int]:
    t = header[name]
    shape = t.get("shape") if isinstance(t, dict) else None
    if not isinstance(t, dict) or t.get("dtype") != st_dtype or not isinstance(shape, list) \
            or not all(type(d) is int and 1 <= d <= MAX_WIDTH for d in shape):
        raise ModelFormatError("tensors", f"{name}: want dtype {st_dtype} and widths "
                                          f"1..{MAX_WIDTH}", t)
    return shape


def load_model(data: bytes, input_schema: InputSchema, output_schema: OutputSchema,
               max_bytes: int = MAX_MODEL_BYTES) -> Mlp:
    """[JOB-EXPORT.2] [JOB-EXPORT.3] The checked model in ``data``, or ``ModelFormatError``.

    Every check runs on our own parse of the header before ``safetensors`` reads a byte of
    the body, so nothing the file says can make the host do more than copy numbers."""
    header = _header(data, max_bytes)
    layers, activation = _meta(header)
    body = len(data) - 8 - struct.unpack("<Q", data[:8])[0]
    outputs = len(output_schema.labels) if output_schema.kind == "classes" \
        else output_schema.outputs
    _check_tensors(header, layers, input_schema.dtype, input_schema.features, outputs, body)
    try:
        tensors = st_load(data)
    except Exception as e:  # belt and braces: our checks should leave nothing for it to refuse
        raise ModelFormatError("tensors", f"safetensors refused the file: {e}", data[:16]) from e
    built = tuple((tensors[f"layer{i}.weight"], tensors[f"layer{i}.bias"])
                  for i in range(layers))
    for w, b in built:
        if not (np.isfinite(w).all() and np.isfinite(b).all()):
            raise ModelFormatError("values", "a weight is NaN or infinite", w.shape)
    return Mlp(input_schema.dtype, built, activation)


def load_model_file(path: Path, input_schema: InputSchema, output_schema: OutputSchema,
                    max_bytes: int = MAX_MODEL_BYTES) -> Mlp:
    """``load_model`` on a file, refusing an oversized one before reading it."""
    size = path.stat().st_size
    if size > max_bytes:
        raise ModelFormatError("size", f"model file over {max_bytes} bytes", size)
    return load_model(path.read_bytes(), input_schema, output_schema, max_bytes)
