"""Warm prediction sandboxes on the real engine [PRED-EXEC.1-5].

The digits MLP (scikit-learn, exported with ``model_format.export_mlp``) answers 100 held-out
rows from a warm container, from a cold one and from the host's reference evaluation: the
same bytes. Hostile inputs get the fixed invalid answer and the warm container keeps
serving; a hanging request hits its timeout and the container is replaced; the container is
as hardened as a training one and has no network; nothing is left behind (the package's
autouse fixture checks every test's containers are gone).
"""

from __future__ import annotations

import json
import pickle
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neural_network import MLPClassifier

from chain.encoding import decode, encode
from chain.predict.io import encode_rows, invalid_blob
from chain.predict.model import DeployedModel, InputSchema, OutputSchema
from client.predict.ckks import CkksKeys
from sandbox import policy
from sandbox.ckks_eval import answer_ciphertext
from sandbox.model_format import export_mlp, load_model
from sandbox.predict_eval import answer_labels, answer_values
from sandbox.predict_frames import MAX_REQUEST_BYTES
from sandbox.predict_sandbox import PredictSandboxError, WarmPredictor
from sandbox.runtime import resolve
from tests.predict.cases import digits_model, h, score_model
from tests.predict.images import predict_image_for_test
from tests.sandbox.conftest import NODE_ID
from tests.sandbox.runtimes import RUNTIMES

pytestmark = pytest.mark.docker

DIGITS = digits_model()
ROWS = 100


@pytest.fixture(scope="module")
def image(docker_client: docker.DockerClient, base_image: str) -> Iterator[str]:
    """The executor image; removed after the module if this module built it."""
    with predict_image_for_test(docker_client) as built:
        yield built


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[MLPClassifier, np.ndarray, Path]:
    x, y = load_digits(return_X_y=True)
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=0)
    clf.fit(x[:1500], y[:1500])
    path = tmp_path_factory.mktemp("digits") / "model.safetensors"
    path.write_bytes(export_mlp([(w.T, b) for w, b in zip(clf.coefs_, clf.intercepts_,
                                                           strict=True)], "float32"))
    return clf, x[1500:1500 + ROWS], path


def _blob(rows: np.ndarray, dtype: str = "float32") -> bytes:
    return encode_rows(dtype, rows.shape[1], [float(v) for v in rows.ravel()])


def _reference(path: Path, record: DeployedModel, blob: bytes, rows: int) -> bytes:
    return answer_labels(load_model(path.read_bytes(), record.input, record.output), record,
                         blob, rows)


@pytest.fixture
def warm(docker_client: docker.DockerClient, image: str, digits: tuple[MLPClassifier, np.ndarray,
                                                                        Path]
         ) -> Iterator[WarmPredictor]:
    with WarmPredictor(docker_client, image, digits[2], DIGITS, "labels", node_id=NODE_ID,
                       request_timeout_s=20) as predictor:
        yield predictor


def test_warm_equals_cold_equals_host_reference(
        docker_client: docker.DockerClient, image: str, warm: WarmPredictor,
        digits: tuple[MLPClassifier, np.ndarray, Path]) -> None:
    """[PRED-EXEC.3] [PRED-EXEC.5] 100 held-out digits: the warm sandbox's answer, the cold
    path's and the host's ``predict_eval`` are the same bytes, three warm requests one
    container, and the labels are scikit-learn's own predictions."""
    clf, rows, path = digits
    blob = _blob(rows)
    reference = _reference(path, DIGITS, blob, ROWS)
    answers = [warm.predict(blob, ROWS) for _ in range(3)]
    first = warm.container_id
    cold = WarmPredictor(docker_client, image, path, DIGITS, "labels", node_id=NODE_ID,
                         warm=False)
    try:
        cold_answer = cold.predict(blob, ROWS)
        assert cold.container_id == ""  # the cold path keeps nothing running
    finally:
        cold.close()
    assert {a.blob for a in answers} == {reference} and cold_answer.blob == reference
    assert answers[0].invalid is None and warm.container_id == first and warm.restarts == 0
    labels = decode(answers[0].blob)[1]
    assert [int(DIGITS.output.labels[i]) for i in labels] == [
        int(v) for v in clf.predict(rows.astype(np.float32))]


def test_hostile_inputs_get_the_invalid_answer_and_the_sandbox_keeps_serving(
        warm: WarmPredictor, digits: tuple[MLPClassifier, np.ndarray, Path]) -> None:
    """[PRED-EXEC.2] [PRED-IO.3] Garbage (with Docker's detach keys ^P^Q in it), a pickle, the
    wrong feature count, the wrong dtype, 4097 rows, a NaN, a blob over 64 MiB: each gets the
    host reference's invalid answer, the same container answers them all, and the next good
    request is answered correctly."""
    _, rows, path = digits
    good = _blob(rows[:2])
    many = np.tile(rows, (41, 1))[:4097]
    cases: list[tuple[bytes, int, str]] = [
        (b"\x10\x11\x10\x11" + bytes(range(256)) * 8, 2, "not_rows"),
        (pickle.dumps({"rows": [1.0, 2.0]}), 2, "not_rows"),
        (encode(["predict-rows/v1", "float32", 64, 2, b"\x00" * 7]), 2, "not_rows"),
        (_blob(rows[:2, :32]), 2, "schema"),
        (_blob(rows[:2], "float64"), 2, "schema"),
        (good, 3, "row_count"),
        (_blob(many), 4097, "row_count"),
        (encode_rows("float32", 64, [float("nan")] + [0.0] * 127), 2, "not_finite"),
        (b"\x00" * (MAX_REQUEST_BYTES + 1), 2, "not_rows"),
    ]
    first = warm.container_id
    for blob, count, reason in cases:
        got = warm.predict(blob, count)
        assert got.invalid == reason and got.blob == invalid_blob(reason)
        assert got.blob == _reference(path, DIGITS, blob, count), reason
    assert warm.container_id == first and warm.restarts == 0
    assert warm.predict(good, 2).blob == _reference(path, DIGITS, good, 2)


def test_hanging_request_times_out_and_the_sandbox_is_replaced(
        docker_client: docker.DockerClient, image: str,
        digits: tuple[MLPClassifier, np.ndarray, Path]) -> None:
    """[PRED-EXEC.4] A request the server never answers (the test freezes the container
    with ``docker pause``: the server hangs without any hook in shipped code) gets a
    ``timeout`` error; its container is killed and removed, a new one is started at once and
    answers the next request correctly. A container killed while idle is replaced before
    the next request, which is served."""
    _, rows, path = digits
    hang = _blob(rows[:1])
    good = _blob(rows[1:3])
    with WarmPredictor(docker_client, image, path, DIGITS, "labels", node_id=NODE_ID,
                       request_timeout_s=2.0) as predictor:
        first = predictor.container_id
        docker_client.containers.get(first).pause()
        with pytest.raises(PredictSandboxError) as caught:
            predictor.predict(hang, 1)
        assert caught.value.reason == "timeout" and "no answer in time" in str(caught.value)
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(first)
        second = predictor.container_id
        assert second not in ("", first) and predictor.restarts == 1
        assert predictor.predict(good, 2).blob == _reference(path, DIGITS, good, 2)
        docker_client.containers.get(second).kill()  # a crash between requests
        deadline = time.monotonic() + 10
        while predictor.healthy() and time.monotonic() < deadline:
            time.sleep(0.05)  # the engine closes the attached stream just after the kill
        assert not predictor.healthy()
        assert predictor.predict(good, 2).blob == _reference(path, DIGITS, good, 2)
        assert predictor.container_id not in (first, second) and predictor.restarts == 2


def test_server_dying_mid_request_is_a_crash_and_is_replaced(
        docker_client: docker.DockerClient, image: str,
        digits: tuple[MLPClassifier, np.ndarray, Path]) -> None:
    """[PRED-EXEC.4] The container dies while a request is pending (frozen with ``docker
    pause`` so the request stays pending, then killed from outside): the request gets a
    ``crashed`` error at once, not after its timeout, and a new container serves the next
    request."""
    _, rows, path = digits
    hang = _blob(rows[:1])
    with WarmPredictor(docker_client, image, path, DIGITS, "labels", node_id=NODE_ID,
                       request_timeout_s=60.0) as predictor:
        first = predictor.container_id
        docker_client.containers.get(first).pause()
        killer = threading.Timer(1.0, lambda: docker_client.containers.get(first).kill())
        killer.start()
        try:
            with pytest.raises(PredictSandboxError) as caught:
                predictor.predict(hang, 1)
        finally:
            killer.join()
        assert caught.value.reason == "crashed" and predictor.restarts == 1
        assert predictor.container_id not in ("", first)
        good = _blob(rows[1:3])
        assert predictor.predict(good, 2).blob == _reference(path, DIGITS, good, 2)


def test_warm_sandbox_is_hardened_and_has_no_network(
        docker_client: docker.DockerClient, warm: WarmPredictor) -> None:
    """[PRED-EXEC.1] The warm container carries the training policy: no network (only ``lo``;
    a TCP connection to a port the host really listens on fails), read-only root, model and
    code, no capabilities, no-new-privileges, seccomp filter, memory and pid limits, and the
    server runs as nobody."""
    host = socket.socket()
    host.bind(("127.0.0.1", 0))
    host.listen(1)
    port = host.getsockname()[1]
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()  # the host can
        container = docker_client.containers.get(warm.container_id)
        cfg = container.attrs["HostConfig"]
        assert cfg["NetworkMode"] == "none" and cfg["ReadonlyRootfs"] is True
        assert cfg["CapDrop"] == ["ALL"] and cfg["Memory"] == warm.limits.memory_bytes
        assert cfg["PidsLimit"] == warm.limits.pids
        assert any(o.startswith("seccomp=") for o in cfg["SecurityOpt"])
        probe = (
            "import json, os, socket\n"
            "status = dict(l.split(':', 1) for l in open('/proc/1/status'))\n"
            "ifaces = [l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]]\n"
            "def refused(path):\n"
            "    try:\n"
            "        open(path, 'w')\n"
            "    except OSError:\n"
            "        return True\n"
            "    return False\n"
            f"s = socket.socket()\n"
            f"try:\n"
            f"    s.connect(('127.0.0.1', {port})); net = 'connected'\n"
            f"except OSError as e:\n"
            f"    net = type(e).__name__\n"
            "print(json.dumps({k: status[k].split() for k in\n"
            "    ('Uid', 'CapEff', 'CapBnd', 'NoNewPrivs', 'Seccomp')} | {'ifaces': ifaces,\n"
            "    'net': net, 'ro': [refused(p) for p in ('/model/x', '/lc/sandbox/x', '/x')]}))\n"
        )
        exec_id = docker_client.api.exec_create(container.id, ["python3", "-c", probe],
                                                user=policy.JOB_USER)["Id"]
        seen = json.loads(docker_client.api.exec_start(exec_id).decode().strip())
    finally:
        host.close()
    assert seen["Uid"][0] == "65534" and int(seen["CapEff"][0], 16) == 0
    assert int(seen["CapBnd"][0], 16) == 0
    assert seen["NoNewPrivs"] == ["1"] and seen["Seccomp"] == ["2"]
    assert seen["ifaces"] == ["lo"] and seen["net"] == "ConnectionRefusedError"
    assert seen["ro"] == [True, True, True]


def test_model_file_that_is_a_pickle_is_refused_inside(
        docker_client: docker.DockerClient, image: str, tmp_path: Path) -> None:
    """[PRED-EXEC.2] [JOB-EXPORT.2] A pickle posing as the model is refused by the server's
    loader (in the container): a ``model`` error naming the rule, and no container stays."""
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(pickle.dumps(["not", "a", "model"]))
    with pytest.raises(PredictSandboxError) as caught:
        WarmPredictor(docker_client, image, bad, DIGITS, "labels", node_id=NODE_ID)
    assert caught.value.reason == "model" and "header" in str(caught.value)


def test_values_and_ciphertext_modes_equal_the_host(
        docker_client: docker.DockerClient, image: str, tmp_path: Path) -> None:
    """[PRED-EXEC.3] A linear regression (diabetes) in ``values`` mode and a logistic
    regression (breast cancer) on CKKS ciphertexts: the warm sandbox's answers equal the host
    evaluation's (values and output hash; the scores blob byte for byte), and the requester
    decrypts the sandbox's scores to the plaintext scores within 1e-3."""
    x, y = load_diabetes(return_X_y=True)
    reg = LinearRegression().fit(x[:400], y[:400])
    record = score_model()
    record = DeployedModel(record.job_id, record.model_hash, record.format,
                           InputSchema("float64", 10), record.output, record.owner, 0)
    reg_path = tmp_path / "reg.safetensors"
    reg_path.write_bytes(export_mlp([(reg.coef_[None, :], np.array([reg.intercept_]))],
                                    "float64"))
    blob = _blob(x[400:420], "float64")
    reference = answer_values(load_model(reg_path.read_bytes(), record.input, record.output),
                              record, blob, 20)
    with WarmPredictor(docker_client, image, reg_path, record, "values",
                       node_id=NODE_ID) as predictor:
        got = predictor.predict(blob, 20)
    assert got.values == reference and got.invalid is None

    xc, yc = load_breast_cancer(return_X_y=True)
    clf = LogisticRegression(max_iter=5000).fit(xc[:500], yc[:500])
    ckks = DeployedModel(h("job:cancer"), h("model:cancer"), "safetensors-mlp",
                         InputSchema("float64", 30), OutputSchema("regression", (), 1, 6),
                         record.owner, 0)
    ckks_path = tmp_path / "ckks.safetensors"
    ckks_path.write_bytes(export_mlp([(clf.coef_, clf.intercept_)], "float64"))
    keys = CkksKeys.generate()
    rows = xc[500:508]
    batch = keys.encrypt_batch(rows)
    host = answer_ciphertext(batch, load_model(ckks_path.read_bytes(), ckks.input, ckks.output))
    with WarmPredictor(docker_client, image, ckks_path, ckks, "ciphertext",
                       node_id=NODE_ID) as predictor:
        scores = predictor.predict(batch, len(rows))
        bad = predictor.predict(b"\x93\xadckks-batch/v1", len(rows))
    assert scores.blob == host and scores.invalid is None and bad.invalid == "not_rows"
    decrypted = keys.decrypt_scores(scores.blob, len(rows))
    assert float(np.max(np.abs(decrypted - clf.decision_function(rows)))) <= 1e-3


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_job_runtime_1_the_warm_executor_runs_under_each_runtime_with_the_same_answer(
        runtime: str, docker_client: docker.DockerClient, image: str,
        digits: tuple[MLPClassifier, np.ndarray, Path]) -> None:
    """[JOB-RUNTIME.1] [JOB-RUNTIME.6] The warm prediction sandbox under runc and under runsc
    (the node's runtime): its container has that runtime, and the answer is the host's
    reference, byte for byte."""
    _clf, rows, path = digits
    blob = _blob(rows)
    with WarmPredictor(docker_client, image, path, DIGITS, "labels", node_id=NODE_ID,
                       request_timeout_s=20,
                       runtime=resolve(docker_client, runtime).name) as predictor:
        answers = [predictor.predict(blob, ROWS).blob for _ in range(2)]
        found = docker_client.containers.get(predictor.container_id)
        assert found.attrs["HostConfig"]["Runtime"] == runtime
    assert answers == [_reference(path, DIGITS, blob, ROWS)] * 2


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_job_runtime_10_the_ckks_executor_answers_under_each_runtime(
        runtime: str, docker_client: docker.DockerClient, image: str, tmp_path: Path) -> None:
    """[JOB-RUNTIME.10] [PRED-CKKS.2] The warm executor in ``ciphertext`` mode under runc and
    under runsc: the scores blob is the host's, byte for byte. TenSEAL starts threads to load
    the requester's context; before [JOB-RUNTIME.10] runsc refused them (clone3 → EPERM) and
    every encrypted request was answered ``not_rows``."""
    xc, yc = load_breast_cancer(return_X_y=True)
    clf = LogisticRegression(max_iter=5000).fit(xc[:500], yc[:500])
    ckks = DeployedModel(h("job:cancer"), h("model:cancer"), "safetensors-mlp",
                         InputSchema("float64", 30), OutputSchema("regression", (), 1, 6),
                         score_model().owner, 0)
    path = tmp_path / "ckks.safetensors"
    path.write_bytes(export_mlp([(clf.coef_, clf.intercept_)], "float64"))
    keys = CkksKeys.generate()
    batch = keys.encrypt_batch(xc[500:504])
    host = answer_ciphertext(batch, load_model(path.read_bytes(), ckks.input, ckks.output))
    with WarmPredictor(docker_client, image, path, ckks, "ciphertext", node_id=NODE_ID,
                       request_timeout_s=60,
                       runtime=resolve(docker_client, runtime).name) as predictor:
        scores = predictor.predict(batch, 4)
    assert scores.invalid is None and scores.blob == host
