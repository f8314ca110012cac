"""The prediction server with an ONNX model, in-process on byte streams [PRED-EXEC.6]: the
pinned ONNX Runtime settings, answers equal to a float64 reference (labels exactly, values
within the stated tolerance) and byte-identical between sessions, a model refused at start
or failing on a request read as "does not load", ciphertext refused as not linear."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from onnx import numpy_helper

from chain.encoding import decode, encode
from chain.predict.io import encode_rows, invalid_blob
from chain.predict.model import DeployedModel, InputSchema, OutputSchema
from sandbox.model_format import ModelFormatError
from sandbox.onnx_eval import OnnxScorer, session_options
from sandbox.predict_eval import answer_labels
from sandbox.predict_frames import ANSWER, ERROR, MODEL_FAULT, READY, REPLY_HEAD, request_frame
from sandbox.predict_server import serve
from sandbox.predict_session import start_failure_reason
from tests.predict import onnx_models as om
from tests.predict.cases import addr, h

CLASSES = DeployedModel(h("job:onnx"), h("model:onnx"), "onnx", InputSchema("float32", om.IN),
                        OutputSchema("classes", ("a", "b", "c")), addr("owner"), 0)
REGRESSION = replace(CLASSES, output=OutputSchema("regression", (), om.OUT, 4))


def _replies(data: bytes) -> list[tuple[int, bytes]]:
    out, at = [], 0
    while at < len(data):
        kind, length = REPLY_HEAD.unpack_from(data, at)
        out.append((kind, data[at + REPLY_HEAD.size:at + REPLY_HEAD.size + length]))
        at += REPLY_HEAD.size + length
    return out


def _file(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(data)
    return path


def reference(rows: np.ndarray, seed: int = 0) -> np.ndarray:
    """The MLP of ``om.mlp`` in float64 numpy."""
    w0, b0, w1, b1 = (numpy_helper.to_array(t).astype(np.float64) for t in om.weights(seed))
    return np.maximum(rows @ w0.T + b0, 0) @ w1.T + b1


def test_pred_exec_6_pinned_runtime_settings() -> None:
    """[PRED-EXEC.6] One intra-op and one inter-op thread, sequential, basic optimisation,
    deterministic compute, no arena: the settings every executor uses."""
    import onnxruntime as ort

    opts = session_options()
    assert (opts.intra_op_num_threads, opts.inter_op_num_threads) == (1, 1)
    assert opts.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert opts.use_deterministic_compute and not opts.enable_cpu_mem_arena


def test_pred_exec_6_server_answers_labels_and_values_like_the_reference(
        tmp_path: Path) -> None:
    """[PRED-EXEC.6] The loop with an ONNX model: READY, labels equal to the float64
    reference's argmax on every row, values within 1 unit of 10^-4 of the reference, a bad
    input gets the invalid answer, and a second session gives the same bytes."""
    path = _file(tmp_path, om.mlp().SerializeToString())
    rows = np.random.default_rng(5).normal(size=(200, om.IN)).astype(np.float32)
    blob = encode_rows("float32", om.IN, [float(v) for v in rows.ravel()])
    bad = encode_rows("float32", 2, [0.0, 1.0])
    got = []
    for record, mode in ((CLASSES, "labels"), (REGRESSION, "values"), (CLASSES, "labels")):
        inp = io.BytesIO(request_frame(0, encode([mode, record.to_wire()]))
                         + request_frame(200, blob) + request_frame(1, bad))
        out = io.BytesIO()
        assert serve(inp, out, path) == 0
        replies = _replies(out.getvalue())
        assert [k for k, _ in replies] == [READY, ANSWER, ANSWER]
        assert replies[2][1] == invalid_blob("schema")
        got.append(replies[1][1])
    ref = reference(rows.astype(np.float64))
    assert decode(got[0])[1] == [int(i) for i in ref.argmax(axis=1)]
    values = np.asarray(decode(got[1]), dtype=np.float64).reshape(200, om.OUT)
    assert np.abs(values - np.rint(ref * 1e4)).max() <= 1
    assert got[2] == got[0]
    scorer = OnnxScorer(path.read_bytes(), CLASSES)
    assert answer_labels(scorer, CLASSES, blob, 200) == got[0]


def test_pred_exec_6_refused_at_start_reads_as_does_not_load(tmp_path: Path) -> None:
    """[PRED-EXEC.6] [PRED-UNLOADABLE.1] A model the ONNX check refuses (custom op, external
    data) or whose probe of MAX_ROWS rows fails in the runtime (an allocation over 4 GiB) is
    one ERROR at start with reason ``model``: the executor answers "does not load"."""
    for build, says in ((om.custom_op, b"com.evil"), (om.external_data, b"etc/shadow"),
                        (om.tile_bomb, b"ONNX Runtime failed on 4096 rows")):
        out = io.BytesIO()
        config = request_frame(0, encode(["labels", CLASSES.to_wire()]))
        assert serve(io.BytesIO(config), out, _file(tmp_path, build().SerializeToString())) == 3
        [(kind, message)] = _replies(out.getvalue())
        assert kind == ERROR and says in message, message[:300]
        assert start_failure_reason(message.decode()) == "model"


def test_pred_exec_6_a_runtime_failure_on_a_request_is_a_model_fault(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """[PRED-EXEC.6] When the runtime fails on a request after READY, the server sends one
    ERROR beginning ``MODEL_FAULT`` (the session maps it to reason ``model``) and exits."""
    path = _file(tmp_path, om.mlp().SerializeToString())

    def broken(self: OnnxScorer, rows: np.ndarray) -> np.ndarray:
        raise ModelFormatError("run", "ONNX Runtime failed on 1 rows: bad_alloc", "MemoryError")

    inp = io.BytesIO(request_frame(0, encode(["labels", CLASSES.to_wire()]))
                     + request_frame(1, encode_rows("float32", om.IN, [0.0] * om.IN)))
    out = io.BytesIO()
    original = OnnxScorer.run
    monkeypatch.setattr(OnnxScorer, "forward", broken)
    assert serve(inp, out, path) == 3
    replies = _replies(out.getvalue())
    assert [k for k, _ in replies] == [READY, ERROR]
    assert replies[1][1].startswith(MODEL_FAULT.encode()) and b"bad_alloc" in replies[1][1]
    assert OnnxScorer.run is original


def test_pred_ckks_1_an_onnx_model_is_not_linear(tmp_path: Path) -> None:
    """[PRED-CKKS.1] A ciphertext request to an ONNX regression model is answered with the
    invalid answer ``schema`` (only a linear safetensors-mlp model evaluates under CKKS)."""
    record = replace(REGRESSION, output=OutputSchema("regression", (), om.OUT, 4))
    out = io.BytesIO()
    inp = io.BytesIO(request_frame(0, encode(["ciphertext", record.to_wire()]))
                     + request_frame(3, b"anything"))
    assert serve(inp, out, _file(tmp_path, om.mlp().SerializeToString())) == 0
    assert _replies(out.getvalue())[1] == (ANSWER, invalid_blob("schema"))
