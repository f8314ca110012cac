"""The request loop inside a prediction sandbox [PRED-EXEC.2] [PRED-EXEC.3].

Runs as the container's PID 1 (``python3 -m sandbox.predict_server``, the image's Python,
this package mounted read-only), as nobody, with no network. It reads frames from stdin
(``predict_frames``) and answers on stdout:

1. the configuration frame: ``encode([mode, DeployedModel wire])``; it loads
   ``/model/model.safetensors`` with the same checks as the host's loader
   (``model_format.load_model_file``), or ``/model/model.onnx`` with the host's ONNX check
   and one pinned ONNX Runtime session (``onnx_eval``, [PRED-EXEC.6]), then says ``READY``,
   or ``ERROR`` and exits when the model is refused;
2. then, forever, one request frame (rows, input blob) → one ``ANSWER`` frame, computed by
   the very functions the host's reference uses (``predict_eval``, ``ckks_eval``), so the
   bytes are equal by construction [PRED-EXEC.3]. A bad input is not an error: it gets the
   fixed invalid answer [PRED-IO.3].

Only this process parses the requester's bytes (canonical msgpack, numbers, SEAL's
deserializer) and the model file's; the host only copies them in and bounded answers out.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, BinaryIO

from chain.encoding import decode, encode
from chain.predict.io import invalid_blob
from chain.predict.model import DeployedModel
from sandbox.errors import SandboxError
from sandbox.model_format import Mlp, ModelFormatError, load_model_file
from sandbox.predict_eval import Scorer, answer_labels, values_or_invalid
from sandbox.predict_frames import (
    ANSWER,
    ERROR,
    EXECUTOR_FAULT,
    MODEL_FAULT,
    READY,
    read_request,
    reply_frame,
    write_whole,
)

MODEL_DIR = Path("/model")
MODEL_FILES = {"safetensors-mlp": "model.safetensors", "onnx": "model.onnx"}
"""The staged model file's name in the container, by deploy format [PRED-EXEC.1]."""
MODEL_PATH = MODEL_DIR / MODEL_FILES["safetensors-mlp"]
MODES = ("labels", "values", "ciphertext")


def answer(mode: str, model: Scorer, record: DeployedModel, blob: bytes, rows: int) -> bytes:
    """The answer bytes of one request: a labels blob, ``encode(values)`` or a CKKS scores
    blob; or the [PRED-IO.3] invalid blob."""
    if mode == "labels":
        return answer_labels(model, record, blob, rows)
    if mode == "values":
        values = values_or_invalid(model, record, blob, rows)
        return values if isinstance(values, bytes) else encode(list(values))
    if not isinstance(model, Mlp):  # [PRED-CKKS.1] only a linear safetensors-mlp model
        return invalid_blob("schema")
    from sandbox.ckks_eval import answer_ciphertext  # tenseal only where it is needed

    return answer_ciphertext(blob, model)


def load(record: DeployedModel, path: Path) -> Scorer:
    """The deployed model at ``path`` by its format, checked as the host checks it."""
    if record.format == "onnx":
        from sandbox.onnx_eval import load_onnx_file  # onnxruntime only where it is needed

        return load_onnx_file(path, record)
    return load_model_file(path, record.input, record.output)


def _configure(payload: bytes) -> tuple[str, DeployedModel]:
    wire: Any = decode(payload)
    if not isinstance(wire, list) or len(wire) != 2 or wire[0] not in MODES:
        raise ValueError(f"configuration must be [mode, model], mode one of {MODES}")
    record = DeployedModel.from_wire(wire[1])
    if (wire[0] == "labels") != (record.output.kind == "classes"):
        raise ValueError(f"mode {wire[0]} does not fit a {record.output.kind} model")
    return str(wire[0]), record


def serve(inp: BinaryIO, out: BinaryIO, model_path: Path | None = None,
          limit_memory: bool = False) -> int:
    """The loop; returns the process's exit code (0 when the host closes stdin).
    ``limit_memory`` (the container's process only): an ONNX model's server caps its
    address space before loading it [PRED-EXEC.6]."""
    def send(kind: int, payload: bytes) -> None:
        write_whole(out, reply_frame(kind, payload))

    first = read_request(inp)
    if first is None:
        return 0
    try:  # the executor's own faults first: they must not read as "the model does not load"
        mode, record = _configure(first[1])
        if mode == "ciphertext" and record.format != "onnx":
            import tenseal  # noqa: F401  (fail at start, not at the first request)
        if record.format == "onnx":
            import onnx  # noqa: F401  (the executor image's, not the model's fault)
            import onnxruntime  # noqa: F401

            if limit_memory:
                from sandbox.onnx_eval import limit_address_space

                limit_address_space()
    except (ValueError, ImportError) as e:
        send(ERROR, (EXECUTOR_FAULT + str(e)).encode("utf-8", "replace"))
        return 3
    try:
        model = load(record, model_path or MODEL_DIR / MODEL_FILES[record.format])
    except (ModelFormatError, ValueError, SandboxError) as e:
        send(ERROR, str(e).encode("utf-8", "replace"))
        return 3
    send(READY, b"")
    while True:
        request = read_request(inp)
        if request is None:
            return 0
        rows, blob = request
        try:
            reply = answer(mode, model, record, blob, rows)
        except ModelFormatError as e:  # [PRED-EXEC.6] the runtime failed on this model
            send(ERROR, (MODEL_FAULT + str(e)).encode("utf-8", "replace"))
            return 3
        send(ANSWER, reply)


def main() -> int:
    try:
        return serve(sys.stdin.buffer, sys.stdout.buffer, limit_memory=True)
    except Exception as e:  # one line for the host; the host restarts the sandbox
        write_whole(sys.stdout.buffer, reply_frame(ERROR, f"{type(e).__name__}: {e}".encode()))
        return 4


if __name__ == "__main__":
    raise SystemExit(main())
