"""[PRED-ACCEPTS.1] [API-PREDICT.1-2] A model's page says what it accepts, on a real solo
node over 127.0.0.1: a deployed linear regression whose file the node stores answers
encrypted rows; the same schema with a file not on the node says "unknown" (null) until
the file arrives; a classifier answers labels only. Each answer is checked against the
OpenAPI document by ``call``."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import numpy as np

from chain.predict.model import OutputSchema
from sandbox.model_format import export_mlp
from tests.client.api.test_api_routes import call
from tests.client.api.test_api_support import running_api
from tests.client.test_models_api_support import deploy_body, paid_job, step

SCORE = OutputSchema("regression", (), 1, 3)


async def test_pred_accepts_1_the_model_page_says_whether_it_answers_encrypted_rows(
        tmp_path: Path) -> None:
    linear = export_mlp([(np.array([[0.5, -1.5]]), np.array([0.25]))])
    file = tmp_path / "linear.safetensors"
    file.write_bytes(linear)
    async with running_api(tmp_path) as api, aiohttp.ClientSession() as s:
        node, keys = api.node, api.keys
        stored = node.put_blob_file(file)
        job_id = await paid_job(node, keys, model_hash=stored)
        await step(node, keys, ("submitter", deploy_body(job_id, model_hash=stored,
                                                          output=SCORE)))
        route = "/models/{job_id}"
        page = await call(s, api, "GET", f"/models/{job_id.hex()}", route)
        assert page["accepts"]["encrypted"] is True, page["accepts"]
        assert page["accepts"]["modes"] == ["values", "ciphertext"]
        assert "linear" in page["accepts"]["encrypted_why"]

        listed = (await call(s, api, "GET", "/models"))["models"]
        assert [m["accepts"]["encrypted"] for m in listed] == [True]


async def test_pred_accepts_1_unknown_until_the_file_is_here_and_labels_for_classifiers(
        tmp_path: Path) -> None:
    absent = bytes.fromhex("ab" * 32)  # a model file this node never stored
    async with running_api(tmp_path) as api, aiohttp.ClientSession() as s:
        node, keys = api.node, api.keys
        score_job = await paid_job(node, keys, model_hash=absent)
        await step(node, keys, ("submitter", deploy_body(score_job, model_hash=absent,
                                                          output=SCORE)))
        page = await call(s, api, "GET", f"/models/{score_job.hex()}", "/models/{job_id}")
        assert page["accepts"]["encrypted"] is None
        assert "not on this node" in page["accepts"]["encrypted_why"]

        labels_job = await paid_job(node, keys)
        await step(node, keys, ("submitter", deploy_body(labels_job)))
        page = await call(s, api, "GET", f"/models/{labels_job.hex()}", "/models/{job_id}")
        assert page["accepts"]["modes"] == ["labels"] and page["accepts"]["encrypted"] is False
