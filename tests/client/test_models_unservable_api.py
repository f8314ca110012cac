"""``/models`` and ``/models/{job_id}`` show ``unservable_by`` [API-PREDICT.1-2] on a real
solo node over 127.0.0.1: null for a deployed model, then, once every drawn executor
answered the fixed "does not load" blob and it was agreed [PRED-UNLOADABLE.1-3], the id of
that request; a further request for the model is refused (``model_unservable``)."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from chain.predict.bodies import RequestPrediction
from chain.predict.io import UNLOADABLE_BLOB, output_hash
from chain.transactions import sign_transaction
from tests.client.api.test_api_routes import call
from tests.client.api.test_api_support import running_api
from tests.client.test_models_api_support import (
    commit_answers,
    deploy_body,
    drawn_request,
    labels_request,
    offer,
    paid_job,
    reveal_answers,
    step,
)


async def test_models_show_the_request_that_made_a_model_unservable(tmp_path: Path) -> None:
    """[API-PREDICT.1] [API-PREDICT.2] [PRED-UNLOADABLE.3] ``unservable_by`` is null, then the
    request id whose agreed unloadable answer closed the model, in the list and the detail,
    both checked against the OpenAPI document."""
    async with running_api(tmp_path) as api, aiohttp.ClientSession() as s:
        node, keys = api.node, api.keys
        job_id = await paid_job(node, keys)
        await step(node, keys, ("submitter", deploy_body(job_id, royalty=100)))
        await offer(node, keys)
        (model,) = (await call(s, api, "GET", "/models"))["models"]
        assert model["unservable_by"] is None
        req = labels_request(job_id)
        request_id, drawn = await drawn_request(node, keys, req)
        assert len(drawn) == 3
        unloadable = output_hash(UNLOADABLE_BLOB)
        answers = dict.fromkeys(drawn, unloadable)
        await commit_answers(node, keys, request_id, answers)
        detail = await call(s, api, "GET", f"/models/{job_id.hex()}", "/models/{job_id}")
        assert detail["unservable_by"] is None  # committed, not yet agreed
        await reveal_answers(node, keys, request_id, answers)
        settled = await call(s, api, "GET", f"/predictions/{request_id.hex()}",
                             "/predictions/{request_id}")
        assert settled["status"] == "agreed" and settled["answer"] == unloadable.hex()
        (model,) = (await call(s, api, "GET", "/models"))["models"]
        assert model["unservable_by"] == request_id.hex()
        detail = await call(s, api, "GET", f"/models/{job_id.hex()}", "/models/{job_id}")
        assert detail["unservable_by"] == request_id.hex()
        assert detail["requests"]["agreed"] == 1
        again = sign_transaction(keys["alice"], node.chain_id,
                                 node.next_nonce(keys["alice"].address), RequestPrediction(req))
        refused = node.submit(again)
        assert not refused.accepted and "model_unservable" in str(refused), refused
