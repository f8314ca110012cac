"""The prediction sandbox's channel without Docker [PRED-EXEC.2] [PRED-EXEC.3]: the frames
are bounded before any payload is read, the server loop (run in-process on byte streams)
answers what the host reference answers, and the host accepts only replies shaped like an
answer."""

from __future__ import annotations

import io
import os
import pickle
import struct
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from chain.encoding import encode
from chain.predict.io import encode_rows, invalid_blob, labels_blob
from sandbox.model_format import export_mlp, load_model
from sandbox.predict_eval import answer_labels
from sandbox.predict_frames import (
    ANSWER,
    ERROR,
    EXECUTOR_FAULT,
    MAX_ERROR_BYTES,
    MAX_REQUEST_BYTES,
    READY,
    REPLY_HEAD,
    parse_reply_head,
    read_request,
    reply_frame,
    request_frame,
    write_whole,
)
from sandbox.predict_sandbox import PredictSandboxError, checked_answer
from sandbox.predict_server import serve
from sandbox.predict_session import MUX_HEAD, _Demux, start_failure_reason
from tests.predict.cases import digits_model, score_model

DIGITS = digits_model()


def _replies(data: bytes) -> list[tuple[int, bytes]]:
    out, at = [], 0
    while at < len(data):
        kind, length = REPLY_HEAD.unpack_from(data, at)
        out.append((kind, data[at + REPLY_HEAD.size:at + REPLY_HEAD.size + length]))
        at += REPLY_HEAD.size + length
    return out


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(7)
    path = tmp_path / "model.safetensors"
    path.write_bytes(export_mlp([(rng.normal(size=(16, 64)), rng.normal(size=16)),
                                 (rng.normal(size=(10, 16)), rng.normal(size=10))]))
    return path


def test_frames_are_bounded_before_the_payload_is_read() -> None:
    """[PRED-EXEC.2] A request head announcing more than 64 MiB, a truncated frame, an unknown
    reply kind and a reply over its cap are refused from the head alone; an error message is
    cut to 4 KiB."""
    assert read_request(io.BytesIO(request_frame(5, b"abc"))) == (5, b"abc")
    assert read_request(io.BytesIO(b"")) is None
    with pytest.raises(ValueError, match="over"):
        read_request(io.BytesIO(struct.pack(">II", 1, MAX_REQUEST_BYTES + 1)))
    with pytest.raises(ValueError, match="truncated"):
        read_request(io.BytesIO(struct.pack(">II", 1, 10) + b"short"))
    with pytest.raises(ValueError, match="truncated"):
        read_request(io.BytesIO(b"\x00\x00"))
    with pytest.raises(ValueError):
        request_frame(1, b"\x00" * (MAX_REQUEST_BYTES + 1))
    with pytest.raises(ValueError, match="kind"):
        parse_reply_head(REPLY_HEAD.pack(9, 1), 100)
    with pytest.raises(ValueError, match="cap"):
        parse_reply_head(REPLY_HEAD.pack(ANSWER, 101), 100)
    with pytest.raises(ValueError, match="cap"):
        parse_reply_head(REPLY_HEAD.pack(ERROR, MAX_ERROR_BYTES + 1), 10**9)
    assert len(reply_frame(ERROR, b"x" * 10_000)) == REPLY_HEAD.size + MAX_ERROR_BYTES


def test_server_loop_answers_what_the_host_reference_answers(model_file: Path) -> None:
    """[PRED-EXEC.3] The loop, fed a configuration and three requests: READY, then exactly the
    bytes of ``predict_eval`` for a good batch, a wrong-feature batch and garbage; it exits 0
    when its input ends."""
    rows = np.random.default_rng(1).normal(size=(5, 64))
    good = encode_rows("float32", 64, [float(v) for v in rows.ravel()])
    bad = encode_rows("float32", 32, [0.0] * 32)
    model = load_model(model_file.read_bytes(), DIGITS.input, DIGITS.output)
    inp = io.BytesIO(request_frame(0, encode(["labels", DIGITS.to_wire()]))
                     + request_frame(5, good) + request_frame(1, bad)
                     + request_frame(2, b"\x80\x04garbage"))
    out = io.BytesIO()
    assert serve(inp, out, model_file) == 0
    assert _replies(out.getvalue()) == [
        (READY, b""), (ANSWER, answer_labels(model, DIGITS, good, 5)),
        (ANSWER, invalid_blob("schema")), (ANSWER, invalid_blob("not_rows"))]


def test_server_refuses_a_bad_model_or_configuration(model_file: Path, tmp_path: Path) -> None:
    """[PRED-EXEC.2] [JOB-EXPORT.2] A pickle posing as the model, or a mode that does not fit
    the model's output, is one ERROR frame naming the problem, and the loop exits 3."""
    pickled = tmp_path / "pickled.safetensors"
    pickled.write_bytes(pickle.dumps({"x": 1}))
    for path, config in ((pickled, ["labels", DIGITS.to_wire()]),
                         (model_file, ["values", DIGITS.to_wire()])):
        out = io.BytesIO()
        assert serve(io.BytesIO(request_frame(0, encode(config))), out, path) == 3
        [(kind, message)] = _replies(out.getvalue())
        assert kind == ERROR and (b"header" in message or b"does not fit" in message)


def test_pred_unloadable_1_the_sandboxs_own_fault_never_reads_as_a_model_that_does_not_load(
        model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """[PRED-UNLOADABLE.1] Only a refused model file is reason ``model`` (the executor then
    answers "does not load"); a ciphertext model on a sandbox without TenSEAL, or a mode the
    host got wrong, is the executor's own fault: its ERROR begins ``EXECUTOR_FAULT`` and
    maps to reason ``executor``, so the executor does not commit the unloadable answer."""
    regression_file = tmp_path / "score.safetensors"
    rng = np.random.default_rng(3)
    regression_file.write_bytes(export_mlp([(rng.normal(size=(1, 30)), rng.normal(size=1))]))
    monkeypatch.setitem(sys.modules, "tenseal", None)  # import tenseal raises ImportError
    pickled = tmp_path / "pickled.safetensors"
    pickled.write_bytes(pickle.dumps({"x": 1}))
    cases = (((regression_file, ["ciphertext", score_model().to_wire()]), "executor"),
             ((model_file, ["values", DIGITS.to_wire()]), "executor"),
             ((pickled, ["labels", DIGITS.to_wire()]), "model"))
    for (path, config), reason in cases:
        out = io.BytesIO()
        assert serve(io.BytesIO(request_frame(0, encode(config))), out, path) == 3
        [(kind, message)] = _replies(out.getvalue())
        assert kind == ERROR
        assert start_failure_reason(message.decode()) == reason, (config[0], message)
        assert message.startswith(EXECUTOR_FAULT.encode()) == (reason == "executor")


def test_host_accepts_only_replies_shaped_like_an_answer() -> None:
    """[PRED-EXEC.2] A labels blob of the request's row count in canonical form, an invalid
    blob, or int64 values of the right count pass; a wrong row count, an index past the
    labels, a non-canonical encoding, garbage or a wrong value count is a ``protocol`` error."""
    now = time.monotonic()
    ok = checked_answer("labels", DIGITS, labels_blob([1, 2, 3], 10), 3, now)
    assert ok.invalid is None and ok.values is None
    assert checked_answer("labels", DIGITS, invalid_blob("schema"), 3, now).invalid == "schema"
    regression = score_model()
    assert checked_answer("values", regression, encode([5, -7]), 2, now).values == (5, -7)
    bad = [("labels", DIGITS, labels_blob([1, 2], 10), 3),
           ("labels", DIGITS, encode(["predict-labels/v1", [1, 2, 10]]), 3),
           ("labels", DIGITS, b"\x92\xd9\x11predict-labels/v1\x93\x01\x02\x03", 3),
           ("labels", DIGITS, b"garbage", 3),
           ("values", regression, encode([5, -7, 1]), 2),
           ("values", regression, encode([2**63, 0]), 2),
           ("ciphertext", regression, encode(["ckks-scores/v1", 5]), 2)]
    for mode, record, raw, rows in bad:
        with pytest.raises(PredictSandboxError) as caught:
            checked_answer(mode, record, raw, rows, now)
        assert caught.value.reason == "protocol", raw


def test_demux_splits_streams_across_chunks_and_bounds_stderr() -> None:
    """[PRED-EXEC.2] Docker's multiplexed attach stream, cut at arbitrary points: stdout whole,
    stderr kept to its bound."""
    stream = (MUX_HEAD.pack(1, 5) + b"hello" + MUX_HEAD.pack(2, 200_000) + b"e" * 200_000
              + MUX_HEAD.pack(1, 3) + b"abc")
    demux = _Demux()
    for i in range(0, len(stream), 7):
        demux.feed(stream[i:i + 7])
    assert bytes(demux.stdout) == b"helloabc" and len(demux.stderr) == 64 * 1024


def test_job_runtime_11_a_reply_is_written_whole_over_short_writes() -> None:
    """[JOB-RUNTIME.11] A 1 MiB reply through a non-blocking pipe (64 KiB of buffer: every
    write is short, and the full pipe answers EAGAIN, as a host pipe under gVisor does)
    reaches a slow reader whole and in order; a stream without a descriptor gets it too."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    data = os.urandom(1 << 20)
    got = bytearray()

    def drain() -> None:
        while chunk := os.read(read_fd, 7_000):
            got.extend(chunk)
            time.sleep(0.0005)

    reader = threading.Thread(target=drain)
    reader.start()
    with os.fdopen(write_fd, "wb") as out:
        write_whole(out, data)
    reader.join(timeout=30)
    os.close(read_fd)
    assert bytes(got) == data
    buffer = io.BytesIO()
    write_whole(buffer, b"frame")
    assert buffer.getvalue() == b"frame"
