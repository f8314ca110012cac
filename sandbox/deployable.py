"""Which deployable format a model file is in, and the check of that format [JOB-EXPORT.1].

The deployable file is the job's model file itself (``/output/model.pt``); its bytes, not its
name, say its format. A safetensors file starts with its header's length and a JSON object;
anything else is parsed as an ONNX protobuf; a ``torch.save`` zip or a pickle is named as
such. Every check is a parse: nothing in the file runs here (ONNX Runtime runs only inside
an executor's sandbox [PRED-EXEC.6]).
"""

from __future__ import annotations

import struct

from chain.predict.model import InputSchema, OutputSchema
from sandbox.model_format import (
    MAX_HEADER_BYTES,
    MAX_MODEL_BYTES,
    Mlp,
    ModelFormatError,
    load_model,
)
from sandbox.onnx_check import MAX_ONNX_BYTES, OnnxModel, check_onnx

FORMAT_NAMES = ("safetensors-mlp", "onnx")
"""The deploy formats ([PRED-MODEL.1] ``format``), in the order they are tried."""


def detect_format(data: bytes) -> str:
    """``safetensors-mlp`` or ``onnx`` by the file's first bytes; a pickle, a torch zip or
    an empty file is refused naming what it is and the deployable formats."""
    if len(data) >= 9:
        (n,) = struct.unpack("<Q", data[:8])
        if 2 <= n <= min(MAX_HEADER_BYTES, len(data) - 8) and data[8:9] == b"{":
            return "safetensors-mlp"
    what = "a torch.save zip" if data[:2] == b"PK" else \
        "a pickle" if data[:1] == b"\x80" else "empty" if not data else None
    if what is not None:
        raise ModelFormatError("format", f"the model file is {what}, not a deployable format",
                               data[:16])
    return "onnx"


def check_model(data: bytes, fmt: str, schema: InputSchema, output: OutputSchema
                ) -> Mlp | OnnxModel:
    """[JOB-EXPORT.2-7] The checked model of deploy format ``fmt``; a file of another format
    than ``fmt`` is refused as not fitting it."""
    if fmt == "safetensors-mlp":
        if len(data) > MAX_MODEL_BYTES:
            raise ModelFormatError("size", f"model file over {MAX_MODEL_BYTES} bytes",
                                   len(data))
        return load_model(data, schema, output)
    if fmt == "onnx":
        return check_onnx(data, schema, output, MAX_ONNX_BYTES)
    raise ModelFormatError("format", "unknown deploy format", fmt)
