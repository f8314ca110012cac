"""``learningchain predict`` end to end against real executors: a real solo node over
127.0.0.1, three ``client.predict.executor.loop.Executor`` loops (bob, carol, dave; each with its
own folder and warm Docker sandbox on the host engine) and the CLI. A paid job's model (a
real safetensors-mlp file in the node's blob store) is deployed with ``model deploy``; the
executors offer, are drawn, run it in their sandboxes, commit and reveal; ``predict`` prints
the agreed labels, which equal what the requester computes locally with the host loader."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chain.content import blob_id_of_bytes
from chain.predict.model import InputSchema, OutputSchema
from client.api.http_client import ApiClient
from client.node.config import WorkerPolicy
from client.predict.executor.loop import Executor
from sandbox.engine import connect
from sandbox.model_format import export_mlp, load_model
from sandbox.policy import LABEL_NODE
from tests.client.api.test_api_support import ApiThread
from tests.client.cli.test_cli_chain import key_file, run
from tests.client.test_models_api_support import paid_job
from tests.framework.wait import wait_until
from tests.predict.images import predict_image_for_test

LABELS = ("cat", "dog", "fish")
NAMES = ("bob", "carol", "dave")


class ExecutorNode:
    """The solo node as one executor sees it: its own folder (saved answers), the rest
    shared (ledger, mempool, blob store), as three executor nodes of one graph would be."""

    def __init__(self, node: Any, data_dir: Path) -> None:
        self._node = node
        self.data_dir = data_dir

    def __getattr__(self, name: str) -> Any:
        return getattr(self._node, name)


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ApiThread]:
    with ApiThread(tmp_path, validators=1, block_interval=0.2) as api:
        yield api


def test_predict_gets_the_executors_agreed_labels(chain: ApiThread, tmp_path: Path) -> None:
    """[PRED-ANSWER.1] [PRED-AGREE.2] [API-PREDICT.3] k = 3 real executors answer a CSV
    request sent by the CLI; the printed labels are the host loader's argmax of the model on
    the rows, and the fee (rows x k, royalty 10 %) is paid."""
    node, keys = chain.node, chain.keys
    assert node is not None
    rng = np.random.default_rng(7)
    layers = [(rng.normal(size=(3, 2)).astype(np.float32),
               rng.normal(size=3).astype(np.float32))]
    model = export_mlp(layers, "float32")
    model_hash = chain.in_loop(lambda: node.blob_store.put_bytes(model))
    assert model_hash == blob_id_of_bytes(model)
    job_id = chain.call(paid_job(node, keys, model_hash))
    run(["model", "deploy", job_id.hex(), "--features", "2", "--labels", ",".join(LABELS),
         "--royalty", "100", *key_file(tmp_path, keys["submitter"], "submitter")], chain)
    rows = rng.normal(size=(12, 2)).astype(np.float32)
    mlp = load_model(model, InputSchema("float32", 2), OutputSchema("classes", LABELS))
    expected = [LABELS[i] for i in np.argmax(mlp.forward(rows.astype(np.float64)), axis=1)]
    path = tmp_path / "rows.csv"
    path.write_text("x0,x1\n" + "".join(f"{a!r},{b!r}\n" for a, b in rows.tolist()))

    engine = connect()
    executors: list[Executor] = []
    with predict_image_for_test(engine) as image:
        try:
            for name in NAMES:
                ex = Executor(ExecutorNode(node, tmp_path / f"exec-{name}"),  # type: ignore
                              WorkerPolicy(predict=True), key=keys[name], client=engine,
                              image=image)
                executors.append(ex)
                chain.call(ex.start())
            wait_until(lambda: chain.in_loop(lambda: len(node.state.keys("predictor"))) == 3,
                       timeout=30, what="three executors offering")
            result = run(["predict", job_id.hex(), "--input", str(path), "--window", "30s",
                          "--timeout", "90s",
                          *key_file(tmp_path, keys["alice"], "alice")], chain)
        finally:
            for ex in executors:
                chain.call(ex.stop(), timeout=60)
        labels = [line.split(": ", 1)[1] for line in result.stdout.splitlines()
                  if line.startswith("row ")]
        assert labels == expected
        assert "fee paid 36 credits" in result.stdout  # 12 rows x k 3, all of it spent
        request_id = ApiClient(chain.url).model(job_id)["predictions"][0]["request_id"]
        rec = ApiClient(chain.url).prediction(request_id)
        assert rec["status"] == "agreed" and len(rec["outcome"]["agreeing"]) == 3
        assert rec["outcome"]["royalty"] == 3
        left = [c.name for c in engine.containers.list(ignore_removed=True, all=True)
                if c.labels.get(LABEL_NODE, "").startswith("predict-")
                and any(c.labels.get(LABEL_NODE) == ex.node_id for ex in executors)]
        assert left == []
