"""ONNX models in warm prediction sandboxes on the real engine [PRED-EXEC.6] (issue 33).

A scikit-learn classifier (skl2onnx, zipmap off) and a small CNN (torch.onnx) trained here on
the UCI digits answer 100 held-out rows from the sandbox: the same bytes as the host-side
reference (the same pinned session in-process) and the same labels as a plain local ONNX
Runtime session. Hostile models are refused on the host check inside or contained: a custom
operator is reason ``model`` at start; a graph that allocates ~2 GB at the largest batch
fails inside the sandbox's address-space cap as a model error (not a killed container); a
float32 sum over 5 000 terms, whose bits could depend on the thread count, gives the same
bytes in three sandboxes with different CPU limits. A square MLP's CKKS answer
[PRED-CKKS.3] from the sandbox equals the host's evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import docker
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from chain.predict.io import encode_rows
from chain.predict.model import DeployedModel, InputSchema, OutputSchema
from sandbox.limits import ResourceLimits
from sandbox.onnx_eval import OnnxScorer
from sandbox.predict_eval import answer_labels, answer_values
from sandbox.predict_sandbox import PredictSandboxError, WarmPredictor
from tests.predict import onnx_models as om
from tests.predict.cases import addr, h
from tests.predict.images import predict_image_for_test
from tests.sandbox.conftest import NODE_ID

pytestmark = pytest.mark.docker

ROWS = 100
DIGITS = DeployedModel(h("job:onnx-digits"), h("model:onnx-digits"), "onnx",
                       InputSchema("float32", 64),
                       OutputSchema("classes", tuple(str(d) for d in range(10))),
                       addr("owner"), 0)


@pytest.fixture(scope="module")
def image(docker_client: docker.DockerClient, base_image: str) -> Iterator[str]:
    with predict_image_for_test(docker_client) as built:
        yield built


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    return x[:1500], y[:1500], x[1500:1500 + ROWS]


def sklearn_onnx(x: np.ndarray, y: np.ndarray) -> bytes:
    from skl2onnx import to_onnx

    clf = LogisticRegression(max_iter=300).fit(x, y)
    return to_onnx(clf, x[:1], options={"zipmap": False},
                   target_opset={"": 17, "ai.onnx.ml": 3}).SerializeToString()


def cnn_onnx(x: np.ndarray, y: np.ndarray) -> bytes:
    import torch

    from tests.predict.onnx_exports import FlatCnn, onnx_bytes

    torch.manual_seed(0)
    net = FlatCnn()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    for step in range(60):
        batch = slice((step * 100) % 1500, (step * 100) % 1500 + 100)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xt[batch]), yt[batch]).backward()
        opt.step()
    return onnx_bytes(net, 64)


def _blob(rows: np.ndarray) -> bytes:
    return encode_rows("float32", rows.shape[1], [float(v) for v in rows.ravel()])


def _local_labels(model: bytes, rows: np.ndarray) -> list[int]:
    """A plain local ONNX Runtime session (default settings), as a requester would run it."""
    import onnxruntime as ort

    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    name = next(o.name for o in session.get_outputs() if o.type == "tensor(float)")
    [scores] = session.run([name], {session.get_inputs()[0].name: rows})
    return [int(i) for i in np.argmax(scores.astype(np.float64), axis=1)]


def test_pred_exec_6_sklearn_and_cnn_answer_as_local_onnx_runtime(
        docker_client: docker.DockerClient, image: str, tmp_path: Path,
        data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """[PRED-EXEC.6] The sandbox's labels blob equals the in-process pinned reference byte
    for byte, and its labels equal a plain local ONNX Runtime session's on every row."""
    from chain.encoding import decode

    x, y, held = data
    blob = _blob(held)
    for name, model in (("sklearn", sklearn_onnx(x, y)), ("cnn", cnn_onnx(x, y))):
        path = tmp_path / f"{name}.onnx"
        path.write_bytes(model)
        reference = answer_labels(OnnxScorer(model, DIGITS), DIGITS, blob, ROWS)
        with WarmPredictor(docker_client, image, path, DIGITS, "labels", node_id=NODE_ID,
                           request_timeout_s=30) as warm:
            got = warm.predict(blob, ROWS)
            again = warm.predict(blob, ROWS)
        assert got.blob == reference == again.blob, name
        labels = decode(got.blob)[1]
        assert labels == _local_labels(model, held), name
        assert len(set(labels)) >= 8, name  # a trained model: many different digits


def test_pred_exec_6_custom_op_is_refused_inside_as_a_model_error(
        docker_client: docker.DockerClient, image: str, tmp_path: Path) -> None:
    """[PRED-EXEC.6] [JOB-EXPORT.5] A custom-domain operator never reaches the runtime: the
    sandbox's check refuses it at start, reason ``model`` (the executor answers "does not
    load"), and the refusal names the domain."""
    record = replace(DIGITS, input=InputSchema("float32", om.IN),
                     output=OutputSchema("classes", ("a", "b", "c")))
    path = tmp_path / "custom.onnx"
    path.write_bytes(om.custom_op().SerializeToString())
    with pytest.raises(PredictSandboxError) as caught:
        WarmPredictor(docker_client, image, path, record, "labels", node_id=NODE_ID)
    assert caught.value.reason == "model" and "com.evil" in str(caught.value)


def alloc_bomb() -> bytes:
    """4 → 3 scores, then Tile to [n, 120 000] floats: ~2 GB at 4096 rows, under ONNX
    Runtime's own 4 GiB limit, over the sandbox's 768 MiB address space."""
    model = om.tile_bomb()
    for init in model.graph.initializer:
        if init.name == "reps":
            init.CopyFrom(numpy_helper.from_array(np.array([1, 40_000], np.int64), "reps"))
    return model.SerializeToString()


def test_pred_exec_6_an_allocation_bomb_is_contained_as_a_model_error(
        docker_client: docker.DockerClient, image: str, tmp_path: Path) -> None:
    """[PRED-EXEC.6] A model passing the host check that allocates ~2 GB for the largest
    batch fails the start probe inside the address-space cap: reason ``model`` with the
    runtime's allocation error, not a container killed by the kernel (reason ``start``)."""
    record = replace(DIGITS, input=InputSchema("float32", om.IN),
                     output=OutputSchema("classes", ("a", "b", "c")))
    path = tmp_path / "bomb.onnx"
    path.write_bytes(alloc_bomb())
    with pytest.raises(PredictSandboxError) as caught:
        WarmPredictor(docker_client, image, path, record, "labels", node_id=NODE_ID,
                      start_timeout_s=120)
    assert caught.value.reason == "model", caught.value
    assert "ONNX Runtime failed on 4096 rows" in str(caught.value)


def long_sum() -> bytes:
    """[n, 4] → MatMul with a [4, 5 000] weight → ReduceSum over 5 000 float32 terms →
    [n, 1]: a sum whose rounding would follow the order a multi-threaded kernel picks."""
    rng = np.random.default_rng(11)
    w = numpy_helper.from_array(rng.normal(size=(4, 5_000)).astype(np.float32), "w")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"]),
         helper.make_node("ReduceSum", ["m", "axes"], ["scores"], keepdims=1)], "sum",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["n", 1])], [w, axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def test_pred_exec_6_thread_sensitive_sums_agree_across_cpu_limits(
        docker_client: docker.DockerClient, image: str, tmp_path: Path) -> None:
    """[PRED-EXEC.6] Three sandboxes with 1, 2 and 0.5 cores give byte-identical values for
    a long float32 sum (one intra-op thread whatever the cores), equal to the in-process
    pinned reference."""
    record = replace(DIGITS, input=InputSchema("float32", 4),
                     output=OutputSchema("regression", (), 1, 3))
    path = tmp_path / "sum.onnx"
    path.write_bytes(long_sum())
    rows = np.random.default_rng(4).normal(size=(50, 4)).astype(np.float32)
    blob = _blob(rows)
    reference = answer_values(OnnxScorer(path.read_bytes(), record), record, blob, 50)
    answers = []
    for cpus in (1_000_000_000, 2_000_000_000, 500_000_000):
        with WarmPredictor(docker_client, image, path, record, "values", node_id=NODE_ID,
                           limits=ResourceLimits(nano_cpus=cpus), start_timeout_s=120) as w:
            answers.append(w.predict(blob, 50).values)
    assert answers[0] == answers[1] == answers[2] == reference


def test_pred_ckks_3_square_mlp_in_the_sandbox_equals_the_host(
        docker_client: docker.DockerClient, image: str, tmp_path: Path) -> None:
    """[PRED-CKKS.3] A square MLP's encrypted answer from a warm sandbox is the host's
    in-process evaluation byte for byte, and decrypts within 1e-3 of the plaintext scores."""
    from client.predict.ckks import CkksKeys
    from sandbox.ckks_eval import evaluate_model
    from sandbox.model_format import export_mlp, load_model
    from tests.predict.test_ckks_poly import ROWS as CKKS_ROWS
    from tests.predict.test_ckks_poly import SCHEMA, SCORE, _train

    layers, rows, _ = _train()
    path = tmp_path / "square.safetensors"
    path.write_bytes(export_mlp(layers, "float64", activation="square"))
    mlp = load_model(path.read_bytes(), SCHEMA, SCORE)
    keys = CkksKeys.generate()
    blob = keys.encrypt_batch(rows)
    record = DeployedModel(h("job:square"), h("model:square"), "safetensors-mlp", SCHEMA,
                           SCORE, addr("owner"), 0)
    with WarmPredictor(docker_client, image, path, record, "ciphertext", node_id=NODE_ID,
                       request_timeout_s=60) as warm:
        answer = warm.predict(blob, CKKS_ROWS)
    assert answer.blob == evaluate_model(blob, mlp)
    got = keys.decrypt_scores(answer.blob, CKKS_ROWS)
    assert float(np.max(np.abs(got - mlp.forward(rows)[:, 0]))) <= 1e-3
