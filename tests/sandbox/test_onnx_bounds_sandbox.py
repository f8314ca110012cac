"""The ONNX check in a real executor's sandbox on the real engine gives the host's verdict
[PRED-ONNX.1] (issue 47 §5): a 64 MiB file of tiny metadata entries, which today's host
accepted and the sandbox's parse could not hold, is refused there as ``bounds``; the float
to int32 cast is refused as ``operator`` [PRED-ONNX.5]; a 64 MiB model at every bound at
once loads in the sandbox and answers [PRED-ONNX.3]."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import numpy as np
import pytest

from chain.encoding import decode
from chain.predict.io import encode_rows
from chain.predict.model import DeployedModel, InputSchema, OutputSchema
from sandbox.predict_sandbox import PredictSandboxError, WarmPredictor
from tests.predict import onnx_models as om
from tests.predict.cases import addr, h
from tests.predict.images import predict_image_for_test
from tests.predict.test_onnx_bounds import at_every_bound, metadata_entries
from tests.predict.test_onnx_undefined_ops import cast_float_to_int32
from tests.sandbox.conftest import NODE_ID

pytestmark = pytest.mark.docker

RECORD = DeployedModel(h("job:onnx-bounds"), h("model:onnx-bounds"), "onnx",
                       InputSchema("float32", om.IN), OutputSchema("classes", ("a", "b", "c")),
                       addr("owner"), 0)


@pytest.fixture(scope="module")
def image(docker_client: docker.DockerClient, base_image: str) -> Iterator[str]:
    with predict_image_for_test(docker_client) as built:
        yield built


@pytest.mark.parametrize("name", ["metadata_entries", "cast_float_to_int32"])
def test_pred_onnx_1_the_sandbox_refuses_what_the_host_refuses(
        name: str, docker_client: docker.DockerClient, image: str, tmp_path: Path) -> None:
    """[PRED-ONNX.1] [PRED-ONNX.2] [PRED-ONNX.5] Inside the executor's sandbox the file is
    refused at start by the same rule as on the host: reason ``model`` (the unloadable
    answer), the message naming ``bounds`` or ``operator`` and the rule ID."""
    data = metadata_entries() if name == "metadata_entries" else \
        cast_float_to_int32().SerializeToString()
    path = tmp_path / "model.onnx"
    path.write_bytes(data)
    with pytest.raises(PredictSandboxError) as caught:
        WarmPredictor(docker_client, image, path, RECORD, "labels", node_id=NODE_ID,
                      start_timeout_s=120)
    expected = "bounds:" if name == "metadata_entries" else "operator:"
    assert caught.value.reason == "model" and expected in str(caught.value), caught.value
    assert "[PRED-ONNX." in str(caught.value)


def test_pred_onnx_3_a_model_at_every_bound_loads_and_answers_in_the_sandbox(
        docker_client: docker.DockerClient, image: str, tmp_path: Path) -> None:
    """[PRED-ONNX.3] The 64 MiB model at every count bound at once starts in a warm sandbox
    (its 768 MiB address space, the 4096-row probe) and answers labels for 20 rows."""
    path = tmp_path / "model.onnx"
    path.write_bytes(at_every_bound())
    rows = np.random.default_rng(3).normal(size=(20, om.IN)).astype(np.float32)
    blob = encode_rows("float32", om.IN, [float(v) for v in rows.ravel()])
    with WarmPredictor(docker_client, image, path, RECORD, "labels",
                       node_id=NODE_ID, start_timeout_s=120, request_timeout_s=60) as warm:
        answer = warm.predict(blob, 20)
    assert answer.invalid is None and len(decode(answer.blob)[1]) == 20
