"""The model and prediction routes on a real solo node over 127.0.0.1 [API-PREDICT.1-3]:
a paid job's model deployed, a request drawn, committed, revealed and settled through real
blocks; each answer checked against the OpenAPI document and against the ledger's balances."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from chain.content import blob_id_of_bytes
from chain.crypto import address_to_text
from chain.predict.answer import answer_commitment
from chain.predict.bodies import PredictCommit, PredictReveal, RequestPrediction
from chain.predict.io import labels_blob, output_hash
from chain.predict.request import PredictionRequest
from chain.types import Amount, Hash32
from tests.client.api.test_api_routes import DOC, call
from tests.client.api.test_api_support import running_api
from tests.client.test_models_api_support import deploy_body, offer, paid_job, step
from tests.predict.ledger_story import INPUT_BLOB, ROWS, fixed

RIGHT = labels_blob([0, 2, 1, 1], 3)
WRONG = labels_blob([1, 1, 1, 1], 3)


async def test_models_and_a_request_through_its_phases(tmp_path: Path) -> None:
    """[API-PREDICT.1] the deployed model with its owner, schema, royalty and request counts;
    [API-PREDICT.2] its requests; [API-PREDICT.3] one request drawing, then its k executors
    in draw order, their commitments, reveals, the agreed answer, and payouts equal to what
    the ledger credited (two agree, one returns wrong labels: outvoted, unpaid, forfeits)."""
    async with running_api(tmp_path) as api, aiohttp.ClientSession() as s:
        node, keys = api.node, api.keys
        job_id = await paid_job(node, keys)
        assert (await call(s, api, "GET", "/models"))["models"] == []
        (deploy_tx,) = await step(node, keys, ("submitter", deploy_body(job_id, royalty=100)))
        await offer(node, keys)
        models = (await call(s, api, "GET", "/models"))["models"]
        assert [m["job_id"] for m in models] == [job_id.hex()]
        model = models[0]
        assert model["owner"] == address_to_text(keys["submitter"].address)
        assert model["input"] == {"dtype": "float32", "features": 2}
        assert model["output"]["labels"] == ["cat", "dog", "fish"]
        assert model["royalty_permille"] == 100 and model["requests"]["total"] == 0

        req = PredictionRequest(Hash32(job_id), Hash32(blob_id_of_bytes(INPUT_BLOB)), ROWS,
                                Amount(1_000), 3, "labels", 0, 60_000, 60_000)
        (request_id,) = await step(node, keys, ("alice", RequestPrediction(req)))
        route = "/predictions/{request_id}"
        rec = await call(s, api, "GET", f"/predictions/{request_id.hex()}", route)
        assert rec["status"] == "drawing" and rec["escrow"] == 1_000
        assert rec["executors"] == [] and rec["outcome"] is None and rec["majority"] == 2
        assert rec["draw_height"] == rec["included_height"] + 1
        detail = await call(s, api, "GET", f"/models/{job_id.hex()}", "/models/{job_id}")
        assert detail["requests"]["open"] == 1 and detail["requests"]["drawing"] == 1
        assert [p["request_id"] for p in detail["predictions"]] == [request_id.hex()]

        await step(node, keys)
        await step(node, keys)
        rec = await call(s, api, "GET", f"/predictions/{request_id.hex()}", route)
        assert rec["status"] == "commit" and len(rec["executors"]) == 3
        assert rec["deadline_ms"] is not None
        names = {address_to_text(k.address): n for n, k in keys.items()}
        drawn = [names[a] for a in rec["executors"]]
        answers = dict(zip(drawn, (RIGHT, RIGHT, WRONG), strict=True))
        salts = {n: fixed(f"salt:{n}") for n in drawn}
        before = {n: node.state.account(keys[n].address).balance
                  for n in (*drawn, "submitter", "alice")}
        commits = await step(node, keys, *((n, PredictCommit(Hash32(request_id), answer_commitment(
            request_id, keys[n].address, output_hash(b), salts[n]))) for n, b in answers.items()))
        rec = await call(s, api, "GET", f"/predictions/{request_id.hex()}", route)
        assert rec["status"] == "reveal"
        assert [a["output_hash"] for a in rec["answers"]] == [None] * 3
        reveals = await step(node, keys, *((n, PredictReveal(Hash32(request_id), output_hash(b),
                                                             salts[n]))
                                           for n, b in answers.items()))
        rec = await call(s, api, "GET", f"/predictions/{request_id.hex()}", route)
        assert rec["status"] == "agreed" and rec["answer"] == output_hash(RIGHT).hex()
        assert rec["escrow"] == 0 and rec["deadline_ms"] is None
        outcome = rec["outcome"]
        liar = address_to_text(keys[drawn[2]].address)
        assert outcome["disagreeing"] == [liar] and outcome["forfeit"] == [liar]
        assert sorted(outcome["agreeing"]) == sorted(rec["executors"][:2])
        assert outcome["royalty"] == 100
        assert [p["amount"] for p in outcome["paid"]] == [450, 450]
        after = {n: node.state.account(keys[n].address).balance for n in before}
        for p in outcome["paid"]:
            assert after[names[p["address"]]] - before[names[p["address"]]] == p["amount"]
        assert after["submitter"] - before["submitter"] == outcome["royalty"]
        assert after[drawn[2]] == before[drawn[2]]
        models = (await call(s, api, "GET", "/models"))["models"]
        assert models[0]["requests"] == {"total": 1, "open": 0, "drawing": 0, "commit": 0,
                                       "reveal": 0, "agreed": 1, "no_majority": 0,
                                       "unserved": 0}
        # [API-DOC.1] [TX-PREDICT.1] the prediction transactions in their documented shapes
        shown = {}
        for h in (deploy_tx, request_id, commits[0], reveals[0]):
            tx = await call(s, api, "GET", f"/txs/{h.hex()}", "/txs/{hash}")
            shown[tx["tx"]["type"]] = tx["tx"]["body"]
        assert shown["deploy_model"]["model_hash"] == model["model_hash"]
        assert shown["deploy_model"]["output"]["labels"] == ["cat", "dog", "fish"]
        assert shown["request_prediction"]["request"]["fee"] == 1_000
        assert shown["predict_commit"]["request_id"] == request_id.hex()
        assert shown["predict_reveal"]["values"] is None


async def test_unknown_and_malformed_ids(tmp_path: Path) -> None:
    """[API-ERR.1] An unknown model or request is a 404 with its own code; a malformed id a
    400, never a 500."""
    async with running_api(tmp_path) as api, aiohttp.ClientSession() as s:
        unknown = "ab" * 32
        for path, code in ((f"/models/{unknown}", "unknown_model"),
                           (f"/predictions/{unknown}", "unknown_request")):
            async with s.get(api.url + path) as resp:
                assert resp.status == 404
                assert (await resp.json())["error"]["code"] == code
        for path in ("/models/xyz", "/predictions/" + "zz" * 32):
            async with s.get(api.url + path) as resp:
                assert resp.status == 400, path
        assert set(DOC["paths"]) >= {"/models", "/models/{job_id}", "/predictions/{request_id}"}
